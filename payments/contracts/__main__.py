"""``python -m payments.contracts``: rebuild the committed contract artifacts from source."""

from payments.contracts import rebuild

if __name__ == "__main__":
    for path in rebuild():
        print(f"wrote {path.name}")
