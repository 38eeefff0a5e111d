"""Fail when the committed notebooks are unclean or the library is out of step with them.

Runs `nbdev_clean` and `nbdev_export` on a *copy* of the project (so nothing of yours is touched)
and lists every file they would change. Exit 0: in sync and clean. Exit 1: run
`nbdev_export && nbdev_clean`, review and commit.
"""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bindir = Path(sys.executable).parent


def snapshot(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob('*'))
            if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for f in ['settings.ini', 'setup.py']: shutil.copy2(root/f, tmp/f)
        for d in ['nbs', 'stemdefect_nb']:
            shutil.copytree(root/d, tmp/d, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
        before = {d: snapshot(tmp/d) for d in ['nbs', 'stemdefect_nb']}
        for cmd in ['nbdev_clean', 'nbdev_export']:
            r = subprocess.run([str(bindir/cmd)], cwd=tmp, capture_output=True, text=True)
            if r.returncode:
                print(f'{cmd} failed:\n{r.stdout}\n{r.stderr}'); return 1
        changed = []
        for d in ['nbs', 'stemdefect_nb']:
            after = snapshot(tmp/d)
            for k in sorted(set(before[d]) | set(after)):
                if before[d].get(k) != after.get(k): changed.append(f'{d}/{k}')
    if changed:
        print('Notebooks unclean or library out of sync; these files would change:')
        for c in changed: print('  ' + c)
        print('Fix: .venv/bin/nbdev_export && .venv/bin/nbdev_clean, review, commit both.')
        return 1
    print('notebooks clean and library in sync with nbs/')
    return 0


if __name__ == '__main__': sys.exit(main())
