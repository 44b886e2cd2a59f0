import subprocess
import sys


def test_space_cost_bits_and_algo_do_not_import_torch() -> None:
    code = "import sys, bortnas, bortnas.core.space, bortnas.cost, bortnas.cost.bits, bortnas.algo, bortnas.algo.agora; print('torch' in sys.modules, 'optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
