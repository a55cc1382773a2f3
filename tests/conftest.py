"""Make tests/ helpers (kernel_contract) importable."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import os

import pytest

DATA = pathlib.Path(__file__).parent / "data"


def _backends() -> list:
    """All three backends; compiled is skipped only when not installed AND not forced by the environment."""
    forced = os.environ.get("MAMBA_CTR_BACKEND", "auto").lower() == "compiled"
    params = []
    for name in ("compiled", "numba", "numpy"):
        marks = []
        if name == "compiled" and not forced:
            try:
                import mamba_ctr._core  # noqa: F401
            except ImportError:
                marks = [pytest.mark.skip(reason="compiled extension not built")]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


BACKENDS = _backends()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def golden():
    import numpy as np

    return dict(np.load(DATA / "paper12L_golden.npz"))
