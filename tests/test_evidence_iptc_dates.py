"""IPTC-IIM fields, dates that contradict each other, and re-saves named only in XMP: files the tests write with
known metadata, checked through `analyse` (the scan's evidence hook)."""
import io
import struct
from datetime import datetime, timezone

from PIL import Image

from app.evidence import analyse
from app.evidence.dates import check_dates

EXIF_IFD, GPS_IFD = 0x8769, 0x8825


def kinds(findings):
    return {f.kind: f for f in findings}


def iim(fields: dict[tuple[int, int], bytes]) -> bytes:
    """An IPTC-IIM block: 0x1C, record, dataset, 16-bit length, value — for each field."""
    return b"".join(b"\x1c" + bytes(key) + struct.pack(">H", len(value)) + value for key, value in fields.items())


def with_app13(data: bytes, block: bytes) -> bytes:
    """A JPEG with Photoshop's APP13 segment holding `block` as its IPTC-NAA resource (ID 0x0404)."""
    if len(block) % 2:
        block += b"\x00"
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(block)) + block
    body = b"Photoshop 3.0\x00" + resource
    return data[:2] + b"\xff\xed" + struct.pack(">H", len(body) + 2) + body + data[2:]


def jpeg(exif: Image.Exif | None = None, xmp: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    extra = {"exif": exif} if exif is not None else {}
    if xmp is not None:
        extra["xmp"] = xmp
    Image.new("RGB", (40, 32), (90, 120, 150)).save(buffer, "JPEG", quality=88, **extra)
    return buffer.getvalue()


def camera_exif(captured="2024:05:06 07:08:09", offset="+02:00", modified=None, digitized=None, gps=None):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Nikon", "Nikon Z 6"
    details = exif.get_ifd(EXIF_IFD)
    details[0x9003] = captured
    if offset:
        details[0x9011] = offset
    if digitized:
        details[0x9004] = digitized
    if modified:
        exif[0x0132] = modified
    if gps:
        day, (h, m, s) = gps
        exif.get_ifd(GPS_IFD).update({0x001D: day, 0x0007: (float(h), float(m), float(s))})
    return exif


def xmp_packet(attributes: str = "", body: str = "") -> bytes:
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
            'xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/" '
            'xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#" '
            f'{attributes}>{body}</rdf:Description></rdf:RDF></x:xmpmeta>').encode()


# ---- IPTC-IIM -------------------------------------------------------------------------------------------
def test_iim_originating_program_naming_a_generator_is_strong():
    data = with_app13(jpeg(), iim({(2, 65): b"Midjourney", (2, 70): b"6.1", (2, 80): b"J. Doe"}))
    found = [f for f in analyse(data, "mj.jpg") if f.source == "iptc"]
    by_kind = kinds(found)
    generator = by_kind["generator_software"]
    assert (generator.strength, generator.points_to) == ("strong", "generated")
    assert generator.details == {"originating_program": "Midjourney 6.1", "generator": "Midjourney"}
    summary = by_kind["iptc_iim"]
    assert summary.strength == "info" and summary.details["by_line"] == "J. Doe"


def test_iim_credit_made_with_google_ai_is_moderate():
    data = with_app13(jpeg(), iim({(2, 110): b"Made with Google AI", (2, 120): "Straße im Schnee".encode()}))
    by_kind = kinds(f for f in analyse(data, "g.jpg") if f.source == "iptc")
    statement = by_kind["ai_statement"]
    assert (statement.strength, statement.points_to) == ("moderate", "generated")
    assert "Made with Google AI" in statement.message
    assert by_kind["iptc_iim"].details["caption"] == "Straße im Schnee"  # UTF-8 text decoded


def test_plain_news_photo_iim_is_context_only():
    data = with_app13(jpeg(), iim({(2, 80): b"Staff photographer", (2, 110): b"Agency", (2, 55): b"20240506"}))
    found = [f for f in analyse(data, "news.jpg") if f.source == "iptc"]
    assert [(f.kind, f.strength, f.points_to) for f in found] == [("iptc_iim", "info", "")]
    assert "Staff photographer" in found[0].message


def test_files_without_iim_have_no_iptc_finding():
    assert not [f for f in analyse(jpeg(), "plain.jpg") if f.source == "iptc"]


def test_damaged_iim_block_costs_nothing_else():
    data = with_app13(jpeg(camera_exif()), b"\x1c\x02\x50\xff\xff" + b"short")  # a length far past the end
    found = analyse(data, "damaged.jpg")
    assert not [f for f in found if f.kind == "check_failed"], found
    assert "illegal field length" in kinds(found)["unreadable_iptc"].message
    assert kinds(found)["camera"].strength == "weak"  # the other checks ran


# ---- dates ----------------------------------------------------------------------------------------------
def date_findings(data: bytes) -> dict:
    return kinds(f for f in analyse(data, "d.jpg") if f.source == "dates")


def test_consistent_camera_dates_say_nothing():
    exif = camera_exif(modified="2024:05:06 07:08:09", digitized="2024:05:06 07:08:09",
                       gps=("2024:05:06", (5, 8, 7)))  # 07:08:09 at +02:00 is 05:08:09 UTC
    assert date_findings(jpeg(exif)) == {}


def test_changed_before_capture_is_a_contradiction():
    found = date_findings(jpeg(camera_exif(modified="2023:01:01 10:00:00")))
    contradiction = found["date_contradiction"]
    assert (contradiction.strength, contradiction.points_to) == ("moderate", "")
    assert "before it was captured" in contradiction.message
    assert contradiction.details == {"captured": "2024:05:06 07:08:09 +02:00", "modified": "2023:01:01 10:00:00"}


def test_changed_after_capture_is_noted():
    found = date_findings(jpeg(camera_exif(modified="2024:05:09 08:00:00")))
    assert found["modified_after_capture"].strength == "info" and "3 days after capture" in \
        found["modified_after_capture"].message
    assert "date_contradiction" not in found


def test_gps_clock_far_from_capture_is_a_contradiction():
    found = date_findings(jpeg(camera_exif(gps=("2024:05:02", (5, 8, 9)))))
    message = found["date_contradiction"].message
    assert "GPS clock (2024:05:02 05:08:09 UTC)" in message and "4 days apart" in message
    # without a recorded offset, any time zone is allowed: 10 hours apart is not a contradiction
    assert date_findings(jpeg(camera_exif(offset=None, gps=("2024:05:05", (21, 8, 9))))) == {}


def test_xmp_and_iptc_capture_dates_must_match_exif():
    packet = xmp_packet('photoshop:DateCreated="2021-03-04T05:06:07"')
    found = date_findings(jpeg(camera_exif(), xmp=packet))
    assert "XMP DateCreated" in found["date_contradiction"].message
    same = xmp_packet('photoshop:DateCreated="2024-05-06T07:08:09+02:00"')
    assert date_findings(jpeg(camera_exif(), xmp=same)) == {}
    iptc = with_app13(jpeg(camera_exif()), iim({(2, 55): b"20190101"}))
    assert "IPTC Date Created" in date_findings(iptc)["date_contradiction"].message


def test_capture_in_the_future_and_placeholders():
    future = jpeg(camera_exif(captured="2031:01:01 00:00:00"))
    now = datetime(2026, 11, 25, tzinfo=timezone.utc)
    found = kinds(check_dates(future, Image.open(io.BytesIO(future)), now=now))
    assert "lies in the future" in found["date_contradiction"].message
    assert date_findings(jpeg(camera_exif(captured="0000:00:00 00:00:00", modified="2024:01:01 00:00:00"))) == {}


def test_digitised_long_after_capture_is_noted_as_a_scan_sign():
    found = date_findings(jpeg(camera_exif(digitized="2024:06:01 12:00:00")))
    assert found["digitized_differs"].strength == "info" and "scanned film" in found["digitized_differs"].message


# ---- re-saves named in XMP ------------------------------------------------------------------------------
def test_editor_named_only_in_the_xmp_history_is_a_resave():
    packet = xmp_packet(body='<xmpMM:History><rdf:Seq><rdf:li stEvt:action="saved" '
                             'stEvt:softwareAgent="Adobe Photoshop 25.0 (Windows)"/></rdf:Seq></xmpMM:History>')
    found = kinds(analyse(jpeg(xmp=packet), "saved.jpg"))
    resave = found["resaved_by_editor"]
    assert resave.details["editor"] == "Adobe Photoshop" and resave.details["where"] == "XMP history"
    assert "XMP history" in resave.message


# ---- what a news desk's own files must not trigger ------------------------------------------------------
def test_captions_that_merely_mention_names_or_deny_ai_are_not_ai_statements():
    for caption in ("Leonardo DiCaprio arrives at the Oscars", "Markets in flux as rates rise",
                    "A firefly at dusk", "This photo is not AI-generated", "Portrait made with airbrush",
                    "Made with aid from the Red Cross"):
        data = with_app13(jpeg(), iim({(2, 120): caption.encode()}))
        assert "ai_statement" not in kinds(analyse(data, "news.jpg")), caption
    data = with_app13(jpeg(), iim({(2, 110): b"Imagen: EFE"}))  # Spanish credit line: "Picture: EFE"
    assert "ai_statement" not in kinds(analyse(data, "efe.jpg"))
    for statement in ("Image generated by AI", "AI-generated illustration", "Created using generative AI"):
        data = with_app13(jpeg(), iim({(2, 120): statement.encode()}))
        assert kinds(analyse(data, "ai.jpg"))["ai_statement"].strength == "moderate", statement


def test_iim_is_read_from_mpo_phone_pictures_too():
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (40, 32), (90, 120, 150)), Image.new("RGB", (20, 16), (9, 9, 9))]
    frames[0].save(buffer, "MPO", save_all=True, append_images=frames[1:])
    data = with_app13(buffer.getvalue(), iim({(2, 65): b"Midjourney"}))
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert kinds(analyse(data, "phone.jpg"))["generator_software"].source == "iptc"


def test_an_absurd_date_does_not_hide_real_contradictions():
    exif = camera_exif(modified="2023:01:01 10:00:00", gps=("2022:01:01", (1, 2, 3)))
    bogus = xmp_packet('photoshop:DateCreated="0001-01-01T00:00:00+05:00"')
    messages = [f.message for f in analyse(jpeg(exif, xmp=bogus), "forged.jpg") if f.kind == "date_contradiction"]
    assert any("before it was captured" in m for m in messages) and any("GPS clock" in m for m in messages)
    assert date_findings(jpeg(camera_exif(captured="0001:01:01 00:00:00"))) == {}
    assert date_findings(jpeg(camera_exif(captured="9999:12:31 23:59:59", offset="-05:00"))) == {}


def test_times_in_different_zones_are_not_contradictions():
    utc_copy = xmp_packet('photoshop:DateCreated="2024-05-06T05:08:09Z"')  # EXIF 07:08:09 with no offset
    assert date_findings(jpeg(camera_exif(offset=None), xmp=utc_copy)) == {}
    # an old GPS fix (a phone's last known position) is not a contradiction; a fix after the shot is
    assert date_findings(jpeg(camera_exif(gps=("2024:05:06", (1, 0, 0))))) == {}
    late = date_findings(jpeg(camera_exif(gps=("2024:05:06", (9, 0, 0)))))
    assert "GPS clock" in late["date_contradiction"].message


def test_lightroom_and_camera_raw_are_not_called_photoshop():
    for software, editor in (("Adobe Photoshop Lightroom Classic 13.2 (Windows)", "Adobe Lightroom"),
                             ("Adobe Photoshop Camera Raw 16.0", "Adobe Camera Raw"),
                             ("Adobe Photoshop 25.1 (Macintosh)", "Adobe Photoshop")):
        exif = Image.Exif()
        exif[0x0131] = software
        assert kinds(analyse(jpeg(exif), "x.jpg"))["resaved_by_editor"].details["editor"] == editor


# ---- the EXIF thumbnail ---------------------------------------------------------------------------------
def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """Raw EXIF (little-endian TIFF): IFD0 with Make, IFD1 pointing at a JPEG thumbnail, as cameras write it."""
    make = b"Canon\x00"
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, len(make), 26) + struct.pack("<I", 32)
    ifd1 = (struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, 62)
            + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail)) + struct.pack("<I", 0))
    return b"Exif\x00\x00" + header + ifd0 + make + ifd1 + thumbnail


def photo_with_thumbnail(picture: Image.Image, thumbnail: Image.Image | bytes) -> bytes:
    if isinstance(thumbnail, Image.Image):
        buffer = io.BytesIO()
        thumbnail.save(buffer, "JPEG", quality=80)
        thumbnail = buffer.getvalue()
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=90, exif=exif_with_thumbnail(thumbnail))
    return out.getvalue()


def thumbnail_finding(data: bytes):
    found = [f for f in analyse(data, "t.jpg") if "thumbnail" in f.kind]
    assert len(found) == 1, found
    return found[0]


def real_photo() -> Image.Image:
    """scikit-learn's sample photograph (installed with the project): real texture, unlike a synthetic gradient."""
    from pathlib import Path

    import sklearn

    return Image.open(Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg").convert("RGB")


def test_the_cameras_own_thumbnail_matches():
    picture = real_photo()
    finding = thumbnail_finding(photo_with_thumbnail(picture, picture.resize((160, 107))))
    assert (finding.kind, finding.strength) == ("thumbnail_matches", "info") and finding.details["difference"] < 8


def test_a_letterboxed_thumbnail_matches_too():
    picture = real_photo()  # 3:2 picture, 4:3 thumbnail with black bars as many cameras write
    thumbnail = Image.new("RGB", (160, 120))
    thumbnail.paste(picture.resize((160, 107)), (0, 6))
    assert thumbnail_finding(photo_with_thumbnail(picture, thumbnail)).kind == "thumbnail_matches"


def test_a_cropped_or_replaced_picture_with_the_old_thumbnail_is_moderate_evidence():
    original = real_photo()
    width, height = original.size
    cropped = original.crop((0, 0, int(width * 0.9), int(height * 0.9)))  # the old EXIF kept by the editor
    finding = thumbnail_finding(photo_with_thumbnail(cropped, original.resize((160, 107))))
    assert (finding.kind, finding.strength, finding.points_to) == ("thumbnail_mismatch", "moderate", "")
    assert "copied from another file" in finding.message
    generated = Image.new("RGB", original.size, (90, 140, 200))  # a picture dressed in a photo's EXIF
    assert thumbnail_finding(photo_with_thumbnail(generated, original.resize((160, 107)))).kind == \
        "thumbnail_mismatch"


def test_a_broken_thumbnail_is_reported_not_raised():
    from tests.images import gradient

    finding = thumbnail_finding(photo_with_thumbnail(gradient(300, 200), b"\xff\xd8\xff\xe0 broken"))
    assert (finding.kind, finding.strength) == ("unreadable_thumbnail", "info")
