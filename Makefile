# The two commands a newcomer needs: `make dev` (the local stack, running) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: dev down status test unit lint deps binaries images api-docs

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

deps: $(VENV)/.installed
	testenv/install-system-packages.sh
	$(PY) -m wpclone_engine.sqlite_dropin

binaries: deps
	$(PY) -m testenv build

# The real node's images (pause, busybox, wordpress, wpclone) as docker-archive tars in the cache, built
# here from Debian's packages and the Dockerfile (no Docker engine, no registry); only changed ones rebuild.
images: deps
	$(PY) -m testenv.images build

dev: binaries
	$(PY) -m testenv up

down:
	$(PY) -m testenv down

status:
	$(PY) -m testenv status

test: binaries lint
	$(PY) -m pytest
	$(PY) -m testenv leftovers

# The OpenAPI document and the Postman collection in docs/api, made from the app (a test checks them).
api-docs: $(VENV)/.installed
	$(PY) -m wpclone_api.api_docs docs/api

unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed
	$(PY) -m ruff check engine common operator api cli testenv tests bench
	$(PY) -m mypy engine common operator api cli

# A laptop cluster with Docker and kind (not used by the tests): make kind-up kind-images deploy
# Clones then serve at http://{name}.clones.localhost and the API at http://wpclone.localhost (see examples/README.md).
KIND_CLUSTER ?= wpclone
IMAGE_REPOSITORY ?= wpclone
IMAGE_TAG ?= dev
KIND_NAMESPACE := wpclone
INGRESS_NGINX_CHART := 4.11.3

.PHONY: kind-up kind-images deploy

kind-up:
	kind get clusters | grep -qx '$(KIND_CLUSTER)' || kind create cluster --name $(KIND_CLUSTER) --config examples/kind/cluster.yaml
	helm upgrade --install ingress-nginx ingress-nginx --repo https://kubernetes.github.io/ingress-nginx \
	  --version $(INGRESS_NGINX_CHART) -n ingress-nginx --create-namespace -f examples/kind/ingress-nginx.yaml --wait
	kubectl create namespace $(KIND_NAMESPACE) --dry-run=client -o yaml | kubectl apply -f -
	kubectl -n $(KIND_NAMESPACE) get secret mysql-admin >/dev/null 2>&1 || { password=$$(openssl rand -hex 16); \
	  kubectl -n $(KIND_NAMESPACE) create secret generic mysql-admin --from-literal=password=$$password \
	    --from-literal=dsn=mysql://root:$$password@mariadb.$(KIND_NAMESPACE).svc:3306/; }
	kubectl -n $(KIND_NAMESPACE) get secret api-tokens >/dev/null 2>&1 || \
	  kubectl -n $(KIND_NAMESPACE) create secret generic api-tokens --from-literal=tokens=$$(openssl rand -hex 24)
	kubectl -n $(KIND_NAMESPACE) apply -f examples/kind/mariadb.yaml
	kubectl -n $(KIND_NAMESPACE) rollout status deployment/mariadb --timeout=180s

kind-images:
	docker build -t $(IMAGE_REPOSITORY):$(IMAGE_TAG) .
	kind load docker-image $(IMAGE_REPOSITORY):$(IMAGE_TAG) --name $(KIND_CLUSTER)

deploy:
	helm upgrade --install wpclone charts/wpclone -n $(KIND_NAMESPACE) -f examples/kind/values.yaml \
	  --set image.repository=$(IMAGE_REPOSITORY) --set image.tag=$(IMAGE_TAG) --wait
	kubectl -n $(KIND_NAMESPACE) rollout restart deployment/wpclone-operator deployment/wpclone-api
