"""How fast the URL rewrite is, against a PHP reference replacer on the same values in the same run.

    .venv/bin/python -m bench.bench_rewrite [--mib 20] [--rounds 3]

The reference is the algorithm migration tools use (WP-CLI's search-replace, Better Search Replace):
PHP's own `unserialize`, a recursive `str_replace` over every string (serialized strings inside
strings unserialized in turn), then `serialize`; plain text is one `str_replace`. Both replace the
plain and the JSON-escaped form of the URL. Values: plain HTML text, a URL-dense serialized array,
and one huge serialized string, each about --mib MiB. Prints the best of --rounds for each side and
their ratio (rewrite / reference: below 1 is faster). No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
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


def rewrite_seconds(rewrite: UrlRewrite, data: bytes, rounds: int) -> tuple[float, bytes]:
    best, out = float("inf"), b""
    for _ in range(rounds):
        start = time.perf_counter()
        out = rewrite.value(data).value
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rewrite = UrlRewrite(OLD, NEW)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name, data in values(args.mib).items():
            (Path(folder) / name).write_bytes(data)
            paths.append(str(Path(folder) / name))
        reference = json.loads(subprocess.run(["php", "-r", REFERENCE, OLD, NEW, str(args.rounds), *paths],
                                              capture_output=True, check=True).stdout)
        print(f"{'value':<18} {'MiB':>6} {'rewrite s':>10} {'PHP ref s':>10} {'ratio':>6}  same output")
        for path in paths:
            name = Path(path).name
            data = Path(path).read_bytes()
            seconds, out = rewrite_seconds(rewrite, data, args.rounds)
            same = base64.b64encode(hashlib.sha256(out).digest()).decode() == reference[name]["sha"]
            php_seconds = reference[name]["seconds"]
            print(f"{name:<18} {len(data) / MIB:>6.1f} {seconds:>10.3f} {php_seconds:>10.3f} "
                  f"{seconds / php_seconds:>6.2f}  {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
