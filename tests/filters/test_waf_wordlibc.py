"""The WAF module's own memchr, memcmp and strlen (filters/waf/wordlibc.c, eight bytes a
step) answer as libc's: tests/filters/waf_wordlibc_check.c builds natively with them renamed
and compares them with the host libc on generated buffers (every alignment, differences and
NULs at every position, bytes >= 0x80)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.filters.conftest import FILTERS

CHECK = Path(__file__).with_name("waf_wordlibc_check.c")


def test_word_functions_agree_with_libc(tmp_path: Path) -> None:
    exe = tmp_path / "wordlibc_check"
    renamed = ["-Dmemchr=word_memchr", "-Dmemcmp=word_memcmp", "-Dstrlen=word_strlen"]
    unit = tmp_path / "wordlibc.o"
    build = subprocess.run([sys.executable, "-m", "ziglang", "cc", "-O2", "-fno-builtin", *renamed, "-c",
                            "-o", str(unit), str(FILTERS / "waf" / "wordlibc.c")], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    build = subprocess.run([sys.executable, "-m", "ziglang", "cc", "-O2", "-o", str(exe), str(CHECK), str(unit)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.split() == ["checked", "20000", "mismatches", "0"]
