"""The OpenAPI contract: a real server's /openapi.json must be a valid document, and a
client generated from it by a standard generator must be able to ingest, list, get,
trace and prove events against that server with an API key, sending and reading every
enum by its wire name.

Usage: python generated_client.py PATH/TO/stele   (with openapi-spec-validator and
openapi-python-client on PATH, and httpx and attrs importable; see requirements.txt)
"""

import base64
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import urllib.request


def start(stele: str, data: pathlib.Path) -> tuple[subprocess.Popen, str, str]:
    log = open(data.parent / "server.log", "w")
    proc = subprocess.Popen(
        [stele, "serve", "--data", str(data), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "STELE_LOG": "warn"},
    )
    line = proc.stdout.readline().strip()
    prefix = "stele listening on "
    if not line.startswith(prefix):
        proc.kill()
        sys.exit(f"the server did not start: {(data.parent / 'server.log').read_text()}")
    # The admin key the server made on its first start.
    key = (data / "bootstrap-admin.key").read_text().strip()
    return proc, line[len(prefix):], key


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.3.2: the root an inclusion proof leads to."""
    if index >= size:
        raise AssertionError("leaf index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise AssertionError("proof too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AssertionError("proof too short")
    return r


# What the generator may say without the document being at fault: it has no NDJSON or
# JSON-text-sequence body type (the JSON body of the same operation is generated), and it
# formats with ruff only when ruff is installed.
EXPECTED_WARNINGS = (
    "Unsupported content type application/x-ndjson",
    "Unsupported content type application/json-seq",
    "ruff is not in PATH",
)


def check_warnings(output: str) -> None:
    """Fails on any generator warning but the expected ones."""
    if "Warning" not in output:
        return
    lines = [l.strip() for l in output.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("WARNING parsing") or line == "Skipping Integration":
            detail = next((l for l in lines[i + 1:] if l), "")
            if not any(detail.startswith(w) for w in EXPECTED_WARNINGS):
                sys.exit(f"the generator warned: {line}: {detail}\n{output}")


def main() -> None:
    stele = sys.argv[1]
    work = pathlib.Path(tempfile.mkdtemp(prefix="stele-openapi-"))
    proc, url, key = start(stele, work / "data")
    try:
        spec_path = work / "openapi.json"
        spec_path.write_bytes(urllib.request.urlopen(url + "/openapi.json").read())
        subprocess.run(["openapi-spec-validator", str(spec_path)], check=True)
        generated = subprocess.run(
            [
                "openapi-python-client", "generate",
                "--path", str(spec_path),
                "--output-path", str(work / "gen" / "stele_client"),
                "--meta", "none",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        check_warnings(generated.stdout + generated.stderr)
        sys.path.insert(0, str(work / "gen"))
        exercise(url, key)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, f"the server exited with {code}"
    print("ok: the served OpenAPI document is valid and a generated client works")


def exercise(url: str, key: str) -> None:
    from stele_client import AuthenticatedClient, Client
    from stele_client.api.access import list_keys
    from stele_client.api.events import get_event, get_trace, ingest_events, list_events
    from stele_client.api.verification import get_checkpoint, get_consistency_proof, list_logs
    from stele_client.models import (
        Actor, ActorType, Category, ConsistencyProof, Event, EventPage, IngestResponse,
        Level, LogList, Outcome, Problem, ProvenEvent, Step, StepStatus, Trace,
    )

    client = AuthenticatedClient(base_url=url, token=key, raise_on_unexpected_status=True)

    # Without a key, a problem that says so.
    anonymous = list_events.sync_detailed(client=Client(base_url=url))
    assert anonymous.status_code == 401, anonymous.content
    assert isinstance(anonymous.parsed, Problem) and anonymous.parsed.code == "unauthenticated"

    # Ingest: enums sent by their wire names, nested objects, a step.
    events = [
        Event(
            action="passport.verify",
            actor=Actor(id="u-1", type_=ActorType.USER, ip="203.0.113.9", name="Ann"),
            category=Category.SECURITY,
            level=Level.WARN,
            outcome=Outcome.FAILURE,
            correlation_id="op-1",
            step=Step(name="mrz", status=StepStatus.IN_PROGRESS, sequence=1),
            duration_ms=120,
        ),
        Event(
            action="passport.verify",
            actor=Actor(id="svc-1", type_=ActorType.API_KEY),
            outcome=Outcome.SUCCESS,
            correlation_id="op-1",
            step=Step(name="chip", status=StepStatus.COMPLETED, sequence=2),
        ),
    ]
    answer = ingest_events.sync_detailed(client=client, body=events)
    assert answer.status_code == 201, answer.content
    receipts = answer.parsed
    assert isinstance(receipts, IngestResponse), receipts
    assert [r.seq for r in receipts.receipts] == [0, 1]
    assert all(not r.duplicate for r in receipts.receipts)
    first = receipts.receipts[0]

    # List: read back, enums parsed from their wire names.
    page = list_events.sync(client=client, action="passport.*", min_seq=1)
    assert isinstance(page, EventPage), page
    assert [e.seq for e in page.events] == [0, 1]
    assert page.events[0].actor.type_ == ActorType.USER
    assert page.events[1].actor.type_ == ActorType.API_KEY
    assert page.events[0].step.status == StepStatus.IN_PROGRESS
    assert page.events[0].outcome == Outcome.FAILURE
    assert page.indexed_through == 1
    assert page.next_cursor is None
    page = list_events.sync(client=client, outcome="failure", level="warn", limit=1)
    assert [e.seq for e in page.events] == [0]

    # Get one, as stored.
    event = get_event.sync(first.id, client=client)
    assert isinstance(event, Event), event
    assert (event.id, event.seq, event.tenant) == (first.id, 0, "default")

    # Get it with its proof, and check the proof here against the signed root.
    proven = get_event.sync_detailed(first.id, client=client, proof=True)
    assert proven.status_code == 200
    assert isinstance(proven.parsed, ProvenEvent), proven.parsed
    proof = proven.parsed.proof
    raw = proven.content.decode()
    stored = raw[len('{"event":'):raw.index(',"proof":')]
    leaf = hashlib.sha256(b"\x00" + stored.encode()).digest()
    assert base64.b64encode(leaf).decode() == first.leaf_hash
    path = [base64.b64decode(h) for h in proof.audit_path]
    lines = proof.checkpoint.split("\n")
    assert lines[0] == "localhost/stele/default"
    assert int(lines[1]) == proof.tree_size
    root = root_from_inclusion(leaf, proof.leaf_index, proof.tree_size, path)
    assert root == base64.b64decode(lines[2]), "the inclusion proof does not lead to the root"

    # Trace the operation.
    trace = get_trace.sync("op-1", client=client)
    assert isinstance(trace, Trace), trace
    assert [s.name for s in trace.steps] == ["mrz", "chip"]
    assert trace.steps[0].status == StepStatus.IN_PROGRESS
    assert trace.steps[0].duration_ms == 120
    assert trace.outcome == Outcome.SUCCESS
    assert len(trace.events) == 2

    # The verifiable log.
    logs = list_logs.sync(client=client)
    assert isinstance(logs, LogList)
    sizes = {l.tenant: l.size for l in logs.logs}
    assert sizes["default"] == 2, sizes
    assert sizes["_stele"] > 0, "the reads above are not in the meta-audit log"
    note = get_checkpoint.sync("default", client=client)
    assert isinstance(note, str) and note.startswith("localhost/stele/default\n2\n"), note
    consistency = get_consistency_proof.sync("default", client=client, from_=1)
    assert isinstance(consistency, ConsistencyProof)
    assert (consistency.from_, consistency.to) == (1, 2)

    # Errors come back as problem details.
    bad = list_events.sync_detailed(client=client, limit=0)
    assert bad.status_code == 400
    assert isinstance(bad.parsed, Problem), bad.parsed
    assert bad.parsed.code == "invalid_query"
    missing = get_event.sync_detailed("0190b3c4-0000-7000-8000-000000000001", client=client)
    assert missing.status_code == 404 and missing.parsed.code == "not_found"

    # The keys: the bootstrap admin key is listed, never with a secret.
    keys = list_keys.sync_detailed(client=client)
    assert keys.status_code == 200
    listed = json.loads(keys.content)["keys"]
    assert [k["name"] for k in listed] == ["bootstrap admin"], listed
    assert key.split("_")[2] not in keys.content.decode()
    print(json.dumps({"receipts": len(receipts.receipts), "trace_steps": len(trace.steps)}))


if __name__ == "__main__":
    main()
