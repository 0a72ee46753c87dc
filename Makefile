# Container images need a Docker engine (none on refit's CI machines): `make images` builds and
# tags them where one exists. Everything else runs through ./dev.
IMAGE := $(shell .venv/bin/python -c "from refit.images import component_image; print(component_image())")

.PHONY: images requirements
images: requirements
	rm -rf dist && uv build --wheel --out-dir dist
	docker build -f components/images/refit/Dockerfile -t $(IMAGE) .

# The image installs exactly what uv.lock pins; tests/unit/test_images.py keeps this fresh.
requirements:
	uv export --frozen --no-emit-project --no-dev --no-header --format requirements-txt \
		-o components/images/requirements.lock
