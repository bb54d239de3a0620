"""An independent MLLP sender for the tests: python-hl7's MLLPClient, over TLS (Python's
ssl module, i.e. OpenSSL) when --ca is given, with a client certificate when --cert/--key
are. Sends one message from a file and prints MSA-1 and MSA-2 of the answer, tab-separated.
Exit status 2 when the connection is refused or closed without an answer."""

import argparse
import ssl
import sys

import hl7
import hl7.client


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("message_file")
    p.add_argument("--ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    a = p.parse_args()
    client = hl7.client.MLLPClient(a.host, a.port)
    try:
        if a.ca:
            ctx = ssl.create_default_context(cafile=a.ca)
            if a.cert:
                ctx.load_cert_chain(a.cert, a.key)
            client.socket = ctx.wrap_socket(client.socket, server_hostname="localhost")
        with open(a.message_file, "rb") as f:
            answer = client.send_message(f.read())
    except (OSError, ssl.SSLError) as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    if not answer:
        print("closed without an answer", file=sys.stderr)
        return 2
    text = answer.strip(b"\x0b\x1c\r\n").decode()
    msa = hl7.parse(text).segment("MSA")
    print(f"{msa[1]}\t{msa[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
