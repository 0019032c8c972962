"""``GET /prompts/<signature>/<name>.wav``: the rendered prompts for carriers that fetch audio over HTTP (Twilio's
``<Play>``), at the signed URLs of ``adapters/ivr/prompt_files.PromptSigner``; rendered on demand (the same files
``prompts build`` writes) and cacheable (``Cache-Control``: the name and its signature never change meaning)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from callcenter.adapters.ivr.prompt_files import PromptFiles, PromptSigner

CACHE_CONTROL = "public, max-age=86400"


def make_router(files: PromptFiles, signer: PromptSigner) -> APIRouter:
    router = APIRouter()

    @router.get("/prompts/{signature}/{name:path}", include_in_schema=False)
    async def prompt(signature: str, name: str) -> Response:
        stem = name.removesuffix(".wav")
        if stem == name or not signer.verify(signature, stem):
            return Response("not found", status_code=404, media_type="text/plain")
        try:
            path = await asyncio.to_thread(files.ensure, stem)
        except Exception:  # the speech tools failed: the carrier plays nothing rather than an error page
            path = None
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": CACHE_CONTROL})

    return router
