"""The Teams app package: manifest valid against the schema it declares, icons of the right size."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import jsonschema
import pytest

from adapters.teams.package import SCHEMA_URL, build_manifest

SCHEMA = Path(__file__).parent / "fixtures" / "teams" / "schema" / "MicrosoftTeams.schema.json"
APP_ID = "11111111-aaaa-bbbb-cccc-000000000001"


def validate(manifest: dict) -> None:
    """Draft 7, not the draft 4 the file names: it uses `const` (draft 6+), which draft 4 ignores."""
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(manifest)


def png_info(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the decoded rows (filter byte stripped; we only write filter 0)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color_type = struct.unpack(">IIBB", data[16:26])
    assert (depth, color_type) == (8, 6)  # 8-bit RGBA
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * 4
    return width, height, [raw[i * stride + 1:(i + 1) * stride] for i in range(height)]


def test_package_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "healthbot-teams.zip"
    subprocess.run([str(Path(sys.executable).parent / "healthbot"), "teams-package", "--app-id", APP_ID, "--out", str(out),
                    "--url", "https://healthbot.example.com"], check=True, capture_output=True)
    archive = zipfile.ZipFile(out)
    assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
    manifest = json.loads(archive.read("manifest.json"))
    validate(manifest)
    assert manifest["$schema"] == SCHEMA_URL and manifest["manifestVersion"] in SCHEMA_URL
    bot = manifest["bots"][0]
    assert bot["botId"] == APP_ID and bot["scopes"] == ["personal", "team", "groupChat"]
    assert [c["title"] for c in bot["commandLists"][0]["commands"]][:5] == ["costs", "jobs", "queries", "security", "health"]
    assert manifest["validDomains"] == ["healthbot.example.com"]

    width, height, _ = png_info(archive.read("color.png"))
    assert (width, height) == (192, 192)
    width, height, rows = png_info(archive.read("outline.png"))
    assert (width, height) == (32, 32)
    pixels = [bytes(row[i:i + 4]) for row in rows for i in range(0, len(row), 4)]
    assert {p for p in pixels} == {b"\x00\x00\x00\x00", b"\xff\xff\xff\xff"}  # white on transparent only
    assert pixels.count(b"\x00\x00\x00\x00") > len(pixels) // 2


def test_a_bad_app_id_is_refused() -> None:
    with pytest.raises(ValueError, match="GUID"):
        build_manifest("my-bot")
    result = subprocess.run([str(Path(sys.executable).parent / "healthbot"), "teams-package", "--app-id", "x"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "GUID" in result.stderr and "Traceback" not in result.stderr


def test_schema_rejects_what_teams_would_reject() -> None:
    """The validator really checks: a manifest without its bot id or with a wrong version fails."""
    manifest = build_manifest(APP_ID)
    broken = json.loads(json.dumps(manifest))
    broken["manifestVersion"] = "9.99"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)
    del manifest["bots"][0]["botId"]
    with pytest.raises(jsonschema.ValidationError):
        validate(manifest)
