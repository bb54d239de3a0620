"""Validates HL7 v2 messages with hl7apy (strict: structure, groups, required fields,
data types, lengths) — the independent referee for the messages refloop writes.

Usage: validate_hl7.py FILE...  Each file holds one ER7 message (segments split by CR or LF).
Prints "valid FILE STRUCTURE" or "invalid FILE: why" per file; exits 1 if any is invalid.
"""

import sys

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message


def main(paths):
    ok = True
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read().replace("\r\n", "\r").replace("\n", "\r").strip("\r")
        try:
            message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
            message.validate()
            print(f"valid {path} {message.name}")
        except Exception as e:  # noqa: BLE001 - every failure is a finding to report
            ok = False
            print(f"invalid {path}: {type(e).__name__}: {e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
