"""A CJK font for matplotlib that works on a fresh, offline machine.

The font comes from the ``mplfonts`` wheel on PyPI, which ships Noto Sans CJK
SC (SIL Open Font License 1.1) as a plain file, so nothing is downloaded at
run time and no system font package is needed. We only register the file with
matplotlib's font manager; ``mplfonts``' own ``init`` (which rewrites
matplotlib's rc files) is not used.
"""

from __future__ import annotations

import base64
import io
from functools import cache
from importlib.resources import files
from pathlib import Path

from matplotlib import font_manager

from pipeline.errors import CallqaError

#: The font file inside the mplfonts package.
CJK_FONT_FILE = "NotoSansCJKsc-Regular.otf"
#: Fallback after the CJK font (Latin glyphs matplotlib always has).
FALLBACK_FAMILY = "DejaVu Sans"


class FontError(CallqaError):
    """The CJK font is missing (mplfonts not installed or its font file removed)."""


def cjk_font_path() -> Path:
    """Path of the shipped CJK font file.

    Raises:
        FontError: mplfonts is not installed or does not ship the font.
    """
    try:
        path = Path(str(files("mplfonts") / "fonts" / CJK_FONT_FILE))
    except ModuleNotFoundError:
        raise FontError("mplfonts", "not installed; `pip install mplfonts` for Chinese chart labels") from None
    if not path.is_file():
        raise FontError(str(path), "CJK font file missing from the mplfonts package")
    return path


@cache
def cjk_font_family() -> str:
    """Register the CJK font with matplotlib (once) and return its family name ('Noto Sans CJK SC')."""
    path = cjk_font_path()
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def cjk_rc() -> dict[str, object]:
    """rcParams for :func:`matplotlib.rc_context` so text renders Chinese, then Latin."""
    return {"font.family": [cjk_font_family(), FALLBACK_FAMILY], "axes.unicode_minus": False}


#: The CSS font family the HTML report embeds.
EMBEDDED_FAMILY = "CallQA CJK"


def subset_font_woff(text: str) -> bytes:
    """The CJK font cut down to the characters of ``text``, as WOFF (zlib) bytes.

    A report uses a few hundred distinct characters, so the embedded font is
    about 100 KB instead of 16 MB; the name table (with the OFL notice) is kept.
    """
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.flavor = "woff"
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    font = TTFont(str(cjk_font_path()), lazy=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text="".join(sorted(set(text))))
    subsetter.subset(font)
    buffer = io.BytesIO()
    font.flavor = "woff"
    font.save(buffer)
    return buffer.getvalue()


def font_face_css(text: str) -> str:
    """An ``@font-face`` rule embedding :func:`subset_font_woff` of ``text`` as a data URL."""
    data = base64.b64encode(subset_font_woff(text)).decode("ascii")
    return (f'@font-face {{ font-family: "{EMBEDDED_FAMILY}"; '
            f'src: url(data:font/woff;base64,{data}) format("woff"); }}')
