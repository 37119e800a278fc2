"""XMP sidecars on real files: written, read back, merged with what darktable and digiKam left there."""

import hashlib
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from mkt_desktop.library.xmp import (
    SidecarError,
    existing_sidecars,
    read_photo_subjects,
    read_subjects,
    sidecar_path,
    write_subjects,
)

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
DIGIKAM = "http://www.digikam.org/ns/1.0/"
OURS_NS = "http://ns.mkt-photo-tagger.org/1.0/"

DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:acme="http://example.com/acme/1.0/"
   exif:DateTimeOriginal="2019:07:14 18:30:05"
   xmp:Rating="4"
   xmpMM:DerivedFrom="IMG_0001.jpg"
   darktable:import_timestamp="63786543210000000"
   darktable:xmp_version="5"
   darktable:history_end="2"
   darktable:iop_order_version="2"
   acme:custom="keep me">
   <!-- written by darktable 4.6 -->
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>darktable|format|jpg</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>places|italy</rdf:li>
     <rdf:li>holiday</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li
      darktable:num="0"
      darktable:operation="exposure"
      darktable:enabled="1"
      darktable:modversion="6"
      darktable:params="0000000000000000000080b9cdcc4c3f00004842000080c0"
      darktable:multi_name=""
      darktable:multi_priority="0"
      darktable:blendop_version="11"
      darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAZY0QVwggZ7CB6FfNgAAGFyCGQ="/>
     <rdf:li
      darktable:num="1"
      darktable:operation="colorin"
      darktable:enabled="1"
      darktable:modversion="7"
      darktable:params="gz48eJzjZhgFo2AUjAIEAAAQOAAB"
      darktable:multi_name=""
      darktable:multi_priority="0"/>
    </rdf:Seq>
   </darktable:history>
   <acme:notes>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">Günther's café — 日本</rdf:li>
    </rdf:Alt>
   </acme:notes>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""

DIGIKAM_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:digiKam="http://www.digikam.org/ns/1.0/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
   xmp:Rating="5">
   <digiKam:TagsList>
    <rdf:Seq>
     <rdf:li>People/Anna</rdf:li>
    </rdf:Seq>
   </digiKam:TagsList>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""


def make_photo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 10), (30, 60, 90)).save(path)
    return path


def digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes()).hexdigest()


def bag(path: Path, namespace: str, name: str) -> list[str]:
    """The rdf:li texts of one keyword list, read with plain ElementTree, as another program would."""
    root = ET.parse(path).getroot()
    prop = root.find(f".//{{{namespace}}}{name}")
    assert prop is not None, f"{name} missing"
    return [li.text for li in prop.iter(f"{{{RDF}}}li")]


def canonical(element: ET.Element) -> tuple:
    """An element as comparable data: namespaced tag, attributes, stripped text, children; prefixes ignored."""
    tag = element.tag if isinstance(element.tag, str) else "<!--comment-->"
    return (tag, sorted(element.attrib.items()), (element.text or "").strip(),
            [canonical(child) for child in element])


def test_sidecar_name_is_the_full_file_name_plus_xmp():
    assert sidecar_path("/p/IMG_0001.JPG") == Path("/p/IMG_0001.JPG.xmp")
    assert sidecar_path(Path("a/b.c.png")) == Path("a/b.c.png.xmp")


def test_written_subjects_read_back_and_parse_as_standard_xmp(tmp_path):
    photo = make_photo(tmp_path / "IMG_0001.jpg")

    written = write_subjects(photo, ["dog", "beach", "  sunset  ", "", "Dog"])

    assert written == tmp_path / "IMG_0001.jpg.xmp"
    assert read_subjects(written) == ["dog", "beach", "sunset"]
    root = ET.parse(written).getroot()
    assert root.tag == "{adobe:ns:meta/}xmpmeta"
    assert root.find(f"{{{RDF}}}RDF/{{{RDF}}}Description/{{{DC}}}subject/{{{RDF}}}Bag") is not None
    text = written.read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "<dc:subject>" in text and "<rdf:Bag>" in text and "<x:xmpmeta" in text  # the usual prefixes


def test_second_write_merges_without_duplicates_and_skips_needless_rewrites(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    sidecar = write_subjects(photo, ["dog", "park"])
    write_subjects(photo, ["DOG", "cat"])
    assert read_subjects(sidecar) == ["dog", "park", "cat"]

    before = sidecar.stat().st_mtime_ns, sidecar.read_bytes()
    os.utime(sidecar, ns=(1, 1))
    assert write_subjects(photo, ["cat", "Park"]) == sidecar
    assert sidecar.stat().st_mtime_ns == 1 and sidecar.read_bytes() == before[1]  # untouched


def test_merge_keeps_everything_darktable_wrote(tmp_path):
    photo = make_photo(tmp_path / "IMG_0001.jpg")
    sidecar = sidecar_path(photo)
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    original = ET.fromstring(DARKTABLE_SIDECAR.encode("utf-8"), ET.XMLParser(
        target=ET.TreeBuilder(insert_comments=True)))

    write_subjects(photo, ["sunset", "holiday", "sea"])

    assert bag(sidecar, DC, "subject") == ["holiday", "darktable|format|jpg", "sunset", "sea"]
    assert bag(sidecar, LR, "hierarchicalSubject") == ["places|italy", "holiday", "sunset", "sea"]
    merged = ET.parse(sidecar, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))).getroot()
    for keywords in merged.iter(f"{{{RDF}}}Bag"):  # take our additions out again...
        for li in list(keywords):
            if li.text in ("sunset", "sea"):
                keywords.remove(li)
    description = merged.find(f".//{{{RDF}}}Description")
    assert bag(sidecar, OURS_NS, "WrittenKeywords") == ["sunset", "sea"]  # ours: "holiday" was darktable's already
    description.remove(description.find(f"{{{OURS_NS}}}WrittenKeywords"))
    assert canonical(merged) == canonical(original)  # ...and the rest is exactly what darktable had
    text = sidecar.read_text(encoding="utf-8")
    assert "darktable:history" in text and "acme:custom" in text and "ns0:" not in text  # its own prefixes


def test_merge_fills_digikam_tags_list_and_keeps_the_packet_wrapper(tmp_path):
    photo = make_photo(tmp_path / "b.png")
    sidecar = sidecar_path(photo)
    sidecar.write_text(DIGIKAM_SIDECAR, encoding="utf-8")

    write_subjects(photo, ["cat"])

    assert bag(sidecar, DIGIKAM, "TagsList") == ["People/Anna", "cat"]  # digiKam reads this list first
    assert read_subjects(sidecar) == ["cat"]
    root = ET.parse(sidecar).getroot()
    assert root.find(f".//{{{RDF}}}Description").get("{http://ns.adobe.com/xap/1.0/}Rating") == "5"
    text = sidecar.read_text(encoding="utf-8")
    assert "<?xpacket begin=" in text and text.rstrip().endswith('<?xpacket end="w"?>')


@pytest.mark.parametrize("labels", [
    ["猫", "café", "дерево", "شجرة", "🐕 dog", "Ünïcödé & <tags> \"quoted\""],
])
def test_any_unicode_label_round_trips(tmp_path, labels):
    photo = make_photo(tmp_path / "ünï" / "фото.jpg")
    sidecar = write_subjects(photo, labels + ["cafe\u0301"])  # decomposed é: same label as "café"
    assert read_subjects(sidecar) == labels
    raw = sidecar.read_bytes().decode("utf-8")  # strict: the file is valid UTF-8
    assert "猫" in raw and "🐕" in raw  # stored as characters, not escapes


def test_the_photo_itself_is_never_touched(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    before = digest(photo), photo.stat().st_mtime_ns
    write_subjects(photo, ["dog"])
    sidecar_path(photo).write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    write_subjects(photo, ["cat"])
    assert (digest(photo), photo.stat().st_mtime_ns) == before


@pytest.mark.parametrize("content", [
    DARKTABLE_SIDECAR[: len(DARKTABLE_SIDECAR) // 2],  # cut short, e.g. by a crash of another program
    "<html><body>not xmp</body></html>",
    "<x:xmpmeta xmlns:x='adobe:ns:meta/'><dc:subject xmlns:dc='http://purl.org/dc/elements/1.1/'/></x:xmpmeta>",
    DARKTABLE_SIDECAR.replace("<rdf:Bag>\n     <rdf:li>holiday</rdf:li>\n     <rdf:li>darktable|format|jpg</rdf:li>\n"
                              "    </rdf:Bag>", "plain text subject"),
])
def test_malformed_sidecar_is_refused_and_left_as_it_was(tmp_path, content):
    photo = make_photo(tmp_path / "a.jpg")
    sidecar = sidecar_path(photo)
    sidecar.write_text(content, encoding="utf-8")
    before = sidecar.read_bytes(), sidecar.stat().st_mtime_ns

    with pytest.raises(SidecarError) as caught:
        write_subjects(photo, ["dog"])

    assert caught.value.path == str(sidecar) and str(sidecar) in str(caught.value)
    assert (sidecar.read_bytes(), sidecar.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.jpg.xmp"]  # no temporary file left
    if "html" not in content:
        with pytest.raises(SidecarError):
            read_subjects(sidecar)


@pytest.mark.parametrize("content", [b"", b"  \n", b"<x/>", b"<?xml version='1.0'?>\n<anything>  </anything>\n"])
def test_sidecar_with_nothing_in_it_is_replaced(tmp_path, content):
    photo = make_photo(tmp_path / "a.jpg")
    sidecar_path(photo).write_bytes(content)
    assert read_subjects(sidecar_path(photo)) == []
    assert read_subjects(write_subjects(photo, ["dog"])) == ["dog"]


@pytest.mark.parametrize("content", ["<x a='1'/>", "<x>text</x>", "<x><!-- a note --></x>", "<x><y/></x>"])
def test_non_xmp_sidecar_with_anything_in_it_is_refused(tmp_path, content):
    photo = make_photo(tmp_path / "a.jpg")
    sidecar_path(photo).write_text(content, encoding="utf-8")
    with pytest.raises(SidecarError, match="not an XMP sidecar"):
        write_subjects(photo, ["dog"])
    assert sidecar_path(photo).read_text(encoding="utf-8") == content


def test_older_photo_xmp_is_read_and_carried_over_but_never_written(tmp_path):
    photo = make_photo(tmp_path / "IMG_7.jpg")
    legacy = tmp_path / "IMG_7.xmp"
    legacy.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    before = legacy.read_bytes()

    assert existing_sidecars(photo) == [legacy]
    sidecar = write_subjects(photo, ["dog"])

    assert sidecar == tmp_path / "IMG_7.jpg.xmp"
    assert read_subjects(sidecar) == ["holiday", "darktable|format|jpg", "dog"]
    assert legacy.read_bytes() == before
    assert existing_sidecars(photo) == [sidecar, legacy]
    assert read_photo_subjects(photo) == ["holiday", "darktable|format|jpg", "dog"]


def test_labels_xml_cannot_hold_are_refused_before_anything_is_written(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="U\\+0007"):
        write_subjects(photo, ["ok", "bell\x07"])
    with pytest.raises(ValueError):
        write_subjects(photo, "dog")  # one string, not a list of labels
    assert not sidecar_path(photo).exists()


def test_no_labels_no_new_sidecar(tmp_path):
    photo = make_photo(tmp_path / "a.jpg")
    assert write_subjects(photo, []) == sidecar_path(photo)
    assert not sidecar_path(photo).exists()


def test_missing_photo_gets_no_sidecar(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_subjects(tmp_path / "gone.jpg", ["dog"])
    assert list(tmp_path.iterdir()) == []


def test_read_subjects_of_a_missing_sidecar_is_empty(tmp_path):
    assert read_subjects(tmp_path / "nothing.jpg.xmp") == []
