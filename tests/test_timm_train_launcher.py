"""timm's own train.py sees this plugin's models when launched through tinynet-timm-train."""
import subprocess
import sys

STAND_IN = '''
import argparse, timm
parser = argparse.ArgumentParser()
parser.add_argument("--model")
parser.add_argument("--num-classes", type=int, default=10)
args = parser.parse_args()
model = timm.create_model(args.model, num_classes=args.num_classes)
print("created", args.model, model.pretrained_cfg["input_size"])
'''


def test_launcher_registers_the_plugin_before_the_script_runs(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(STAND_IN)
    plain = subprocess.run([sys.executable, str(script), "--model", "ghostnet_b"], capture_output=True, text=True)
    assert plain.returncode != 0 and "Unknown model" in plain.stderr  # why the launcher exists
    launched = subprocess.run([sys.executable, "-m", "tinynet_cli.timm_train", str(script), "--model",
                               "ghostnet_b"], capture_output=True, text=True)
    assert launched.returncode == 0, launched.stderr
    assert "created ghostnet_b (3, 202, 202)" in launched.stdout


def test_launcher_reports_a_missing_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinynet_cli.timm_train", str(tmp_path / "train.py")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_launcher_without_a_script_says_what_it_needs(capsys):
    from tinynet_cli.timm_train import main

    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines()[-1].startswith("tinynet-timm-train: error: give the script to run")
