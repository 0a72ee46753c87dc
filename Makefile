# `make images` builds refit's two images: with Docker where a Docker engine exists, else with
# podman (scripts/images.sh: no registry needed, bases made with debootstrap and cached, see
# components/images/README.md). CONTAINER_ENGINE=docker|podman chooses explicitly.
# Everything else runs through ./dev.
IMAGE := $(shell .venv/bin/python -c "from refit.images import component_image; print(component_image())")
TFDV_IMAGE := $(shell .venv/bin/python -c "from refit.images import tfdv_image; print(tfdv_image())")
VERSION := $(shell .venv/bin/python -c "import refit; print(refit.__version__)")
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
CONTAINER_ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
LABELS := --build-arg REFIT_VERSION=$(VERSION) --build-arg VCS_REF=$(REVISION)

.PHONY: images requirements requirements-tfdv
# refit (Debian 12) and refit-tfdv (Debian 13: refit plus TFDV in /opt/tfdv), from one wheel.
images: requirements
ifeq ($(CONTAINER_ENGINE),docker)
	rm -rf dist && SOURCE_DATE_EPOCH=315532800 uv build --wheel --out-dir dist
	docker build -f components/images/refit/Dockerfile $(LABELS) -t $(IMAGE) .
	docker build -f components/images/refit-tfdv/Dockerfile $(LABELS) -t $(TFDV_IMAGE) .
else
	scripts/images.sh build
endif

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
