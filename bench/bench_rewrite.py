"""How fast the URL rewrite is, against a PHP reference replacer on the same values in the same run.

    .venv/bin/python -m bench.bench_rewrite [--mib 20] [--rounds 3]

The reference is the algorithm migration tools use (WP-CLI's search-replace, Better Search Replace):
PHP's own `unserialize`, a recursive `str_replace` over every string (serialized strings inside
strings unserialized in turn), then `serialize`; plain text is one `str_replace`. Both replace the
plain and the JSON-escaped form of the URL. Values: plain HTML text, a URL-dense serialized array,
and one huge serialized string, each about --mib MiB. The two sides take turns, a round of each value
at a time (the machine's speed drifts: one side's rounds all at once would measure the drift); prints
the best and the median of --rounds for each side and their ratios (rewrite / reference: below 1 is
faster). No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.unit.php_values import dumps
from wpclone_engine.rewrite import UrlRewrite

OLD, NEW = "http://old.test", "https://clone-1234.clones.example.com"
MIB = 2**20

REFERENCE = r"""
ini_set('memory_limit', '-1');
[$old, $new, $rounds] = [$argv[1], $argv[2], (int) $argv[3]];
$search = [$old, str_replace('/', '\/', $old)];
$replace = [$new, str_replace('/', '\/', $new)];
function replace_in($value, $search, $replace) {
    if (is_string($value)) {
        $inner = @unserialize($value, ['allowed_classes' => false]);
        if ($inner !== false || $value === 'b:0;') {
            return serialize(replace_in($inner, $search, $replace));
        }
        return str_replace($search, $replace, $value);
    }
    if (is_array($value)) {
        foreach ($value as $key => $item) {
            $value[$key] = replace_in($item, $search, $replace);
        }
    }
    return $value;
}
$results = [];
foreach (array_slice($argv, 4) as $path) {
    $data = file_get_contents($path);
    $best = INF;
    for ($i = 0; $i < $rounds; $i++) {
        $start = hrtime(true);
        $out = replace_in($data, $search, $replace);
        $best = min($best, (hrtime(true) - $start) / 1e9);
    }
    $results[basename($path)] = ['seconds' => $best, 'sha' => base64_encode(hash('sha256', $out, true))];
}
echo json_encode($results);
"""


def values(mib: int) -> dict[str, bytes]:
    size = mib * MIB
    paragraph = f'<p>See <a href="{OLD}/shop/item/">the shop</a> and <img src="{OLD}/wp-content/x.jpg"/> now.</p>\n'
    plain = (paragraph * (size // len(paragraph) + 1)).encode()[:size]
    plain = plain[:plain.rfind(b"\n") + 1]
    entry = {"url": f"{OLD}/p/", "image": f"{OLD}/wp-content/uploads/a.jpg", "title": "Item", "n": 7}
    array = dumps([entry] * (size // len(dumps(entry))))
    huge = dumps(plain.decode())
    return {"plain-text": plain, "serialized-array": array, "one-huge-string": huge}


def rewrite_once(rewrite: UrlRewrite, data: bytes) -> tuple[float, bytes]:
    start = time.perf_counter()
    out = rewrite.value(data).value
    return time.perf_counter() - start, out


def reference_once(path: str) -> tuple[float, str]:
    """One round of the PHP reference on the value in `path`: (seconds, base64 SHA-256 of its output)."""
    result = json.loads(subprocess.run(["php", "-r", REFERENCE, OLD, NEW, "1", path],
                                       capture_output=True, check=True).stdout)[Path(path).name]
    return result["seconds"], result["sha"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rewrite = UrlRewrite(OLD, NEW)
    with tempfile.TemporaryDirectory() as folder:
        data = values(args.mib)
        for name, value in data.items():
            (Path(folder) / name).write_bytes(value)
        ours: dict[str, list[float]] = {name: [] for name in data}
        theirs: dict[str, list[float]] = {name: [] for name in data}
        same: dict[str, bool] = dict.fromkeys(data, True)
        for _ in range(args.rounds):
            for name, value in data.items():
                php_seconds, php_sha = reference_once(str(Path(folder) / name))
                seconds, out = rewrite_once(rewrite, value)
                theirs[name].append(php_seconds)
                ours[name].append(seconds)
                same[name] &= base64.b64encode(hashlib.sha256(out).digest()).decode() == php_sha
        print(f"{'value':<18} {'MiB':>6} {'rewrite s':>10} {'PHP ref s':>10} {'ratio':>6} "
              f"{'median s':>9} {'PHP median':>10} {'ratio':>6}  same output")
        for name, value in data.items():
            best, php_best = min(ours[name]), min(theirs[name])
            median, php_median = statistics.median(ours[name]), statistics.median(theirs[name])
            print(f"{name:<18} {len(value) / MIB:>6.1f} {best:>10.3f} {php_best:>10.3f} {best / php_best:>6.2f} "
                  f"{median:>9.3f} {php_median:>10.3f} {median / php_median:>6.2f}  {'yes' if same[name] else 'no'}")


if __name__ == "__main__":
    main()
