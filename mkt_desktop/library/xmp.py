"""XMP sidecars: labels written as keywords that digiKam, darktable and Lightroom read.

Where the sidecar lives: `photo.jpg.xmp`, the full file name plus ".xmp". darktable only reads that
form, digiKam reads and (by default) writes it, and it keeps `photo.jpg` and `photo.raw` apart where
`photo.xmp` would be shared by both. The older `photo.xmp` form (Lightroom, digiKam's "commercial
programs" option) is read, never written: when `photo.jpg.xmp` does not exist yet, its keywords are
carried into the new sidecar so no program's view loses them.

Writing merges: the existing sidecar is parsed, the labels are added to its keyword lists without
duplicates (case-insensitively, as labels are in this app), and every other element, attribute,
namespace prefix and comment (darktable's history, ratings, digiKam's TagsList, ...) is written back.
The keywords this app added are listed in the sidecar itself (`mktpt:WrittenKeywords`, a bag of
its own namespace, which other programs keep and ignore), so that `sync_subjects` can take back
what a person has since rejected, while a keyword another program wrote, even the same word, stays.
Only a sidecar with nothing in it (an empty file, a bare `<x/>`) is replaced outright.
The new labels go to dc:subject, and also to digiKam:TagsList and lr:hierarchicalSubject when those
lists already exist, because digiKam and darktable read those first and would otherwise not show
them. A sidecar that cannot be parsed is never overwritten: SidecarError names it. The photo itself
is never opened for writing.
"""

import io
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

from mkt_core.runtime.files import atomic_file
from mkt_desktop.library.labels import NOT_XML as _NOT_XML  # what XML 1.0 cannot carry: one rule with the labels

NAMESPACES = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
    "darktable": "http://darktable.sf.net/",
    "MicrosoftPhoto": "http://ns.microsoft.com/photo/1.0/",
    "mktpt": "http://ns.mkt-photo-tagger.org/1.0/",
}
for _prefix, _uri in NAMESPACES.items():
    ET.register_namespace(_prefix, _uri)
_prefixes = dict(NAMESPACES)  # the standard ones plus those adopted from files read so far


def _q(prefix: str, name: str) -> str:
    return f"{{{NAMESPACES[prefix]}}}{name}"


XMPMETA, RDF, DESCRIPTION, ABOUT = _q("x", "xmpmeta"), _q("rdf", "RDF"), _q("rdf", "Description"), _q("rdf", "about")
BAG, SEQ, LI = _q("rdf", "Bag"), _q("rdf", "Seq"), _q("rdf", "li")
DC_SUBJECT = _q("dc", "subject")
DIGIKAM_TAGS = _q("digiKam", "TagsList")
LR_HIERARCHICAL = _q("lr", "hierarchicalSubject")
KEYWORD_LISTS = (DC_SUBJECT, DIGIKAM_TAGS, LR_HIERARCHICAL)  # dc:subject is always written, the others if present
OURS = _q("mktpt", "WrittenKeywords")  # the keywords this app wrote (and may take back)

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_END = '\n<?xpacket end="w"?>'
_GENERATED_PREFIX = re.compile(r"ns\d+")


class SidecarError(Exception):
    """A sidecar that cannot be used safely; nothing was written to it."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def sidecar_path(photo_path: str | os.PathLike) -> Path:
    """The sidecar this app writes: `photo.jpg` -> `photo.jpg.xmp` (darktable / digiKam convention)."""
    photo = Path(photo_path)
    return photo.with_name(photo.name + ".xmp")


def existing_sidecars(photo_path: str | os.PathLike) -> list[Path]:
    """The sidecars present for a photo: `photo.jpg.xmp` first, then `photo.xmp` / `photo.XMP`."""
    photo = Path(photo_path)
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for candidate in (sidecar_path(photo), photo.with_suffix(".xmp"), photo.with_suffix(".XMP")):
        try:
            info = candidate.stat()
        except OSError:
            continue
        if (info.st_dev, info.st_ino) not in seen:  # one file on a case-insensitive disk
            seen.add((info.st_dev, info.st_ino))
            found.append(candidate)
    return found


def read_subjects(sidecar: str | os.PathLike) -> list[str]:
    """The dc:subject keywords of a sidecar, in file order; [] if the file does not exist or holds nothing."""
    path = Path(sidecar)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if _holds_nothing(data):
        return []
    root, _ = _parse(data, path)
    keywords = _keyword_list(_descriptions(root, path), DC_SUBJECT, path)
    return [] if keywords is None else _items(keywords)


def read_photo_subjects(photo_path: str | os.PathLike) -> list[str]:
    """The keywords of every sidecar of a photo, merged without duplicates."""
    subjects: list[str] = []
    for sidecar in existing_sidecars(photo_path):
        subjects = _union(subjects, read_subjects(sidecar))
    return subjects


def write_subjects(photo_path: str | os.PathLike, subjects: list[str]) -> Path:
    """Add `subjects` to the photo's `photo.jpg.xmp` as dc:subject keywords, merging with what is there.

    Returns the sidecar's path. The file is rewritten atomically, and only when a keyword was
    actually added. Raises SidecarError for an existing sidecar that cannot be parsed (left as it
    was), FileNotFoundError when the photo is gone, ValueError for a subject XML cannot hold.
    """
    _update(photo_path, subjects, take_back=False)
    return sidecar_path(photo_path)


def sync_subjects(photo_path: str | os.PathLike, subjects: list[str]) -> Path | None:
    """Make the keywords this app has written into the photo's sidecar exactly `subjects`: the new
    ones are added, the ones it wrote earlier and no longer gives are removed from every keyword
    list; keywords and fields of other programs stay. Returns the sidecar's path when it was
    rewritten, None when nothing had to change (no file is created for no keywords)."""
    return _update(photo_path, subjects, take_back=True)


def _update(photo_path: str | os.PathLike, subjects: list[str], take_back: bool) -> Path | None:
    photo = Path(photo_path)
    if not photo.is_file():
        raise FileNotFoundError(f"{photo}: photo not found, no sidecar written")
    new = _clean(subjects)
    target = sidecar_path(photo)
    try:
        before = target.stat()
        data = target.read_bytes()
    except FileNotFoundError:
        before, data = None, b""
    carried: list[str] = []
    if not _holds_nothing(data):
        root, packet = _parse(data, target)
    elif not new:
        return None  # nothing to write, nothing to take back
    else:  # no sidecar, or one with nothing in it to lose
        root, packet = _new_sidecar(), False
        carried = [s for other in existing_sidecars(photo) if other != target for s in read_subjects(other)]

    descriptions = _descriptions(root, target)
    ours_list = _keyword_list(descriptions, OURS, target)
    ours_before = [] if ours_list is None else _items(ours_list)
    wanted = {_key(s) for s in new}
    dropped = {_key(s) for s in ours_before} - wanted if take_back else set()
    present = set()  # keywords already in the sidecar's lists, whoever wrote them
    changed = 0
    for tag in KEYWORD_LISTS:
        keywords = _keyword_list(descriptions, tag, target)
        if keywords is None and tag == DC_SUBJECT and (new or carried):
            keywords = ET.SubElement(ET.SubElement(descriptions[0], DC_SUBJECT), BAG)
        if keywords is not None:
            changed += _remove(keywords, dropped)
            present |= {_key(s) for s in _items(keywords)}
            changed += _merge(keywords, _union(carried, new))
    ours_keys = {_key(s) for s in ours_before}
    ours = [s for s in ours_before if _key(s) not in dropped]
    ours += [s for s in new if _key(s) not in ours_keys and _key(s) not in present]  # only what this app added
    if [_key(s) for s in ours] != [_key(s) for s in ours_before]:
        changed += 1
        _set_ours(descriptions, ours_list, ours)
    if changed == 0:  # nothing new: the file (if any) stays byte for byte and keeps its mtime
        return None

    ET.indent(root, space=" ")
    text = _XML_DECLARATION + (_PACKET_BEGIN if packet else "") + ET.tostring(root, encoding="unicode")
    output = (text + (_PACKET_END if packet else "") + "\n").encode("utf-8")
    _parse(output, target)  # never write a file we could not read back
    if before is not None:
        now = target.stat()
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            raise SidecarError(target, "changed by another program while being updated; nothing written, try again")
    with atomic_file(target) as file:
        file.write(output)
    return target


def _set_ours(descriptions: list[ET.Element], ours_list: ET.Element | None, ours: list[str]) -> None:
    """Rewrite the list of keywords this app wrote; an empty list goes away altogether."""
    if ours_list is not None:
        for description in descriptions:
            prop = description.find(OURS)
            if prop is not None:
                description.remove(prop)
    if ours:
        bag = ET.SubElement(ET.SubElement(descriptions[0], OURS), BAG)
        for subject in ours:
            ET.SubElement(bag, LI).text = subject


# -- parsing --------------------------------------------------------------------------------------


def _parse(data: bytes, path: Path) -> tuple[ET.Element, bool]:
    """The root element (comments and processing instructions kept) and whether the file had an xpacket wrapper."""
    try:
        for _event, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
            _adopt_prefix(prefix, uri)
        parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        raise SidecarError(path, f"not valid XML ({exc}); left unchanged") from None
    if root.tag not in (XMPMETA, RDF) and root.find(RDF) is None:
        raise SidecarError(path, f"not an XMP sidecar (root element {root.tag!r}); left unchanged")
    return root, b"<?xpacket begin" in data


def _holds_nothing(data: bytes) -> bool:
    """An empty file, or one bare element such as `<x/>` (no attributes, text, children or comments): replacing it
    loses nothing, so it is not refused as malformed."""
    if not data.strip():
        return True
    try:
        root = ET.fromstring(data, ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True)))
    except ET.ParseError:
        return False
    return not root.attrib and len(root) == 0 and not (root.text or "").strip()


def _adopt_prefix(prefix: str, uri: str) -> None:
    """Keep the file's own prefix for a namespace we do not know, instead of ElementTree's ns0, ns1...

    ElementTree's prefix table is process-wide; only namespaces and prefixes not already known are
    added, so a file can never change how the standard XMP namespaces are written.
    """
    if not prefix or prefix == "xml" or prefix in _prefixes or uri in _prefixes.values():
        return
    if _GENERATED_PREFIX.fullmatch(prefix):  # ElementTree reserves ns0, ns1...
        return
    ET.register_namespace(prefix, uri)
    _prefixes[prefix] = uri


def _descriptions(root: ET.Element, path: Path) -> list[ET.Element]:
    rdf = root if root.tag == RDF else root.find(RDF)
    if rdf is None:
        raise SidecarError(path, "no rdf:RDF element; left unchanged")
    descriptions = rdf.findall(DESCRIPTION)
    if not descriptions:
        descriptions = [ET.SubElement(rdf, DESCRIPTION, {ABOUT: ""})]
    return descriptions


def _keyword_list(descriptions: list[ET.Element], tag: str, path: Path) -> ET.Element | None:
    """The rdf:Bag (or rdf:Seq, as digiKam writes TagsList) holding one keyword property, or None if absent."""
    for description in descriptions:
        if description.get(tag) is not None:
            raise SidecarError(path, f"{_name(tag)} is a single value, not a list; left unchanged")
        prop = description.find(tag)
        if prop is None:
            continue
        container = prop.find(BAG)
        if container is None:
            container = prop.find(SEQ)
        if container is not None:
            return container
        if len(prop) == 0 and not (prop.text or "").strip():  # an empty property: give it a bag
            return ET.SubElement(prop, BAG)
        raise SidecarError(path, f"{_name(tag)} is not an rdf:Bag or rdf:Seq; left unchanged")
    return None


def _name(tag: str) -> str:
    uri, local = tag[1:].split("}")
    prefix = next((p for p, u in _prefixes.items() if u == uri), uri)
    return f"{prefix}:{local}"


def _new_sidecar() -> ET.Element:
    root = ET.Element(XMPMETA, {_q("x", "xmptk"): "MKT Photo Tagger"})
    ET.SubElement(ET.SubElement(root, RDF), DESCRIPTION, {ABOUT: ""})
    return root


# -- keywords -------------------------------------------------------------------------------------


def _key(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip().casefold()


def _items(container: ET.Element) -> list[str]:
    return [li.text.strip() for li in container.findall(LI) if li.text and li.text.strip()]


def _union(first: list[str], second: list[str]) -> list[str]:
    keys = {_key(s) for s in first}
    result = list(first)
    for subject in second:
        if _key(subject) not in keys:
            keys.add(_key(subject))
            result.append(subject)
    return result


def _clean(subjects: list[str]) -> list[str]:
    """Trimmed, NFC, blank ones dropped, duplicates dropped; ValueError for what XML cannot hold."""
    if isinstance(subjects, str):
        raise ValueError("subjects must be a list of labels, not one string")
    clean: list[str] = []
    for subject in subjects:
        if not isinstance(subject, str):
            raise ValueError(f"a subject must be text, not {type(subject).__name__}")
        subject = unicodedata.normalize("NFC", subject).strip()
        bad = _NOT_XML.search(subject)
        if bad:
            raise ValueError(f"subject {subject!r} holds character U+{ord(bad.group()):04X}, which XMP cannot store")
        if subject:
            clean = _union(clean, [subject])
    return clean


def _remove(container: ET.Element, keys: set[str]) -> int:
    """Remove the entries whose keyword is one of `keys` (case-folded); how many were removed."""
    removed = 0
    for li in container.findall(LI):
        if li.text and _key(li.text) in keys:
            container.remove(li)
            removed += 1
    return removed


def _merge(container: ET.Element, subjects: list[str]) -> int:
    """Append the subjects missing from the list; existing entries, duplicates included, are left alone."""
    have = {_key(text) for text in _items(container)}
    added = 0
    for subject in subjects:
        if _key(subject) not in have:
            have.add(_key(subject))
            ET.SubElement(container, LI).text = subject
            added += 1
    return added
