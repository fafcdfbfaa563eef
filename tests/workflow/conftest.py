import pytest

from tests.workflow.helpers import run_snakemake


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One complete local run of the tiny config with 2 cores, shared by the workflow tests and
    the SLURM comparison."""
    workdir = tmp_path_factory.mktemp("tiny_local")
    proc = run_snakemake(workdir, "--cores", "2")
    return workdir, proc
