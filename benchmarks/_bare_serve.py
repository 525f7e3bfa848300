"""The reference of benchmarks/serving.py: a bare aiohttp server calling the same model.

`python benchmarks/_bare_serve.py WEIGHTS ARCH DIM PORT`: loads the safetensors file into
`lvm.ARCHITECTURES[ARCH](DIM)`, then answers POST /predict `{"context": [[...]]}` with
`{"vector": [...]}`: msgspec decode, one tensor, the model under inference_mode, tolist,
encode. No validation, no routing, no metrics: the floor a port server is measured against.
Prints `ready` when listening.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import torch
from aiohttp import web
from safetensors.torch import load as load_safetensors

from trainledger.engines.training.lvm import ARCHITECTURES


def main() -> None:
    weights, arch, dim, port = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = ARCHITECTURES[arch](dim)
    model.load_state_dict(load_safetensors(weights.read_bytes()), strict=True)
    model.eval()
    decode, encode = msgspec.json.Decoder().decode, msgspec.json.Encoder().encode

    async def predict(request: web.Request) -> web.Response:
        body = decode(await request.read())
        with torch.inference_mode():
            out = model(torch.tensor([body["context"]], dtype=torch.float32))[0]
        return web.Response(body=encode({"vector": out.tolist()}), content_type="application/json")

    app = web.Application()
    app.router.add_post("/predict", predict)

    async def ready(_app: web.Application) -> None:
        print("ready", flush=True)

    app.on_startup.append(ready)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
