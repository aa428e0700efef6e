"""The benchmark suite measures the checkout it belongs to: every measured process imports this checkout's
bpe_numba, even when another copy is installed in site-packages (the results are labelled with the
checkout's ``git describe``)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORKER = "import bpe_numba, json, sys; json.dump({'ok': True, 'module': bpe_numba.__file__}, open(sys.argv[1], 'w'))"


def test_measured_processes_import_the_checkout(tmp_path):
    stale = tmp_path / "site" / "bpe_numba"  # an older install that comes first on the path
    stale.mkdir(parents=True)
    (stale / "__init__.py").write_text("raise ImportError('the stale copy was imported')\n")
    result = tmp_path / "result.json"
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from benchmarks import bench_train
        res = bench_train.run_measured([sys.executable, "-c", {WORKER!r}, {str(result)!r}], "probe",
                                       {str(result)!r}, 60, env={{"PYTHONPATH": {str(stale.parent)!r}}},
                                       cwd={str(tmp_path)!r})
        print(json.dumps(res))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res.get("ok"), res
    assert Path(res["module"]).resolve() == REPO / "bpe_numba" / "__init__.py"
