# Container images need a Docker engine (none on refit's CI machines): `make images` builds and
# tags them where one exists. Everything else runs through ./dev.
IMAGE := $(shell .venv/bin/python -c "from refit.images import component_image; print(component_image())")
TFDV_IMAGE := $(shell .venv/bin/python -c "from refit.images import tfdv_image; print(tfdv_image())")

.PHONY: images requirements requirements-tfdv
# refit (Debian 12) and refit-tfdv (Debian 13: refit plus TFDV in /opt/tfdv), from one wheel.
images: requirements
	rm -rf dist && uv build --wheel --out-dir dist
	docker build -f components/images/refit/Dockerfile -t $(IMAGE) .
	docker build -f components/images/refit-tfdv/Dockerfile -t $(TFDV_IMAGE) .

# The image installs exactly what uv.lock pins; tests/unit/test_images.py keeps this fresh.
requirements:
	uv export --frozen --no-emit-project --no-dev --no-header --format requirements-txt \
		-o components/images/requirements.lock

# The refit-tfdv image's TFDV venv: re-resolves requirements.in (what scripts/tfdv-env.sh
# installs) for CPython 3.11 on glibc 2.39; run it deliberately, when those versions change.
requirements-tfdv:
	uv pip compile --no-config --python-version 3.11 --python-platform x86_64-manylinux_2_39 \
		--generate-hashes --no-header components/images/refit-tfdv/requirements.in \
		-o components/images/refit-tfdv/requirements.lock
