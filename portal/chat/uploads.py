"""Chat image uploads: verified by decoding, re-encoded without metadata, stored under the data dir.

Uploads are hostile: the declared type is ignored, the image is fully decoded (with a pixel cap
against decompression bombs) and written anew, which drops EXIF/GPS and anything appended.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Request, UploadFile
from PIL import Image, ImageSequence, UnidentifiedImageError
from pydantic import BaseModel

from portal.accounts.deps import require_scope
from portal.accounts.principal import Principal
from portal.core.errors import BadRequest, PayloadTooLarge

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000
MAX_FRAMES = 300
FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
URL_PREFIX = "/static/uploads/chat/"

router = APIRouter(tags=["chat"])


class UploadResult(BaseModel):
    url: str
    width: int
    height: int
    format: str
    size: int


def reencode(data: bytes) -> tuple[bytes, str, int, int]:
    """Decode ``data`` fully and write a clean copy; raises BadRequest for anything else."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format or ""
            if fmt not in FORMATS:
                raise BadRequest("Only JPEG, PNG, GIF and WebP images are accepted", field="image")
            if probe.width * probe.height > MAX_PIXELS:
                raise BadRequest("Image has too many pixels", field="image")
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            out = io.BytesIO()
            width, height = image.size
            animated = getattr(image, "n_frames", 1) > 1 and fmt in ("GIF", "WEBP")
            if animated:
                frames = [f.copy() for _, f in zip(range(MAX_FRAMES), ImageSequence.Iterator(image), strict=False)]
                frames[0].save(
                    out,
                    format=fmt,
                    save_all=True,
                    append_images=frames[1:],
                    loop=image.info.get("loop", 0),
                    duration=image.info.get("duration", 100),
                )
            elif fmt == "JPEG":
                image.convert("RGB").save(out, format="JPEG", quality=90, optimize=True)
            elif fmt == "PNG":
                clean = image if image.mode in ("RGB", "RGBA", "L", "LA", "P") else image.convert("RGBA")
                clean.save(out, format="PNG", optimize=True)
            elif fmt == "GIF":
                image.save(out, format="GIF")
            else:
                image.save(out, format="WEBP", quality=90)
    except BadRequest:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadRequest("The file is not a valid image", field="image") from exc
    return out.getvalue(), FORMATS[fmt], width, height


@router.post("/api/chat/upload", response_model=UploadResult, status_code=201)
async def upload_image(
    request: Request,
    principal: Annotated[Principal, Depends(require_scope("chat:write"))],
    image: Annotated[UploadFile, File(description="JPEG, PNG, GIF or WebP, at most 5 MB")],
) -> UploadResult:
    data = await image.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise PayloadTooLarge("Images may be at most 5 MB", max_bytes=MAX_BYTES)
    if not data:
        raise BadRequest("The file is empty", field="image")
    clean, ext, width, height = await asyncio.to_thread(reencode, data)
    directory: Path = request.app.state.settings.uploads_dir / "chat"
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    name = f"{secrets.token_hex(16)}.{ext}"
    await asyncio.to_thread((directory / name).write_bytes, clean)
    return UploadResult(url=URL_PREFIX + name, width=width, height=height, format=ext, size=len(clean))
