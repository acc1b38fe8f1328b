"""Mixed int8/fp32: dynamic int8 with the MatMuls that move the answers most left in fp32.

Full dynamic int8 can change a percent or two of a classifier's answers (on a CPU without VNNI,
as here, the u8 x s8 kernels also saturate), which fails the parity gate. Accuracy-aware
fallback, as in Intel Neural Compressor's tuning and ONNX Runtime's ``nodes_to_exclude``, keeps
most of the speed: measure how much quantizing each weight MatMul alone changes the logits on the
calibration sample (mean KL to the fp32 answers), then leave the most sensitive ones in fp32, one
at a time, until the int8 model agrees with fp32 on that sample at a margin above the gate (half
the allowed disagreement). The choice is made on the calibration text, never on ``--eval``: the
variant is then verified on ``--eval`` like every other, and fails parity honestly if the
sample was not representative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protege.deploy.quantize import quantize_dynamic_onnx

__all__ = ["quantize_mixed_onnx", "weight_matmuls"]

MAX_FALLBACK = 0.5  # never leave more than half of the weight MatMuls in fp32: past that, fp32 is the honest answer


def weight_matmuls(path: str | Path) -> list[str]:
    """Names of the MatMul/Gemm nodes of the ONNX file ``path`` whose second input is a weight (an initializer)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1 and n.input[1] in weights]


def _outputs(path: Path, feeds: list[dict]) -> np.ndarray:
    from protege.deploy.sessions import make_session

    session = make_session(path)
    return np.concatenate([session.run(["logits"], feed)[0] for feed in feeds]).astype(np.float64)


def _kl(ref: np.ndarray, out: np.ndarray) -> float:
    if ref.shape[-1] == 1:  # regression: squared error stands in for the divergence
        return float(np.mean((ref - out) ** 2))
    p, q = (np.exp(x - x.max(-1, keepdims=True)) for x in (ref, out))
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    return float(np.mean(np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), -1)))


def _agreement(ref: np.ndarray, out: np.ndarray) -> float:
    if ref.shape[-1] == 1:
        return float(np.corrcoef(ref[:, 0], out[:, 0])[0, 1])
    return float(np.mean(ref.argmax(-1) == out.argmax(-1)))


def quantize_mixed_onnx(src: str | Path, dst: str | Path, feeds: list[dict], *, min_agreement: float,
                        log=lambda _msg: None) -> dict:
    """Dynamic int8 of ``src`` into ``dst`` with the fewest sensitive MatMuls in fp32 that reach parity on ``feeds``.

    ``feeds`` are calibration batches (ONNX Runtime input dicts). The target on them is
    ``1 - (1 - min_agreement) / 2`` (a margin for the sample's size); returns what the manifest
    records: the fp32 nodes, each node's sensitivity rank, and the agreement reached on the sample.
    """
    src, dst = Path(src), Path(dst)
    target = 1 - (1 - min_agreement) / 2
    ref = _outputs(src, feeds)
    nodes = weight_matmuls(src)
    trial = dst.with_name(dst.stem + ".trial.onnx")
    try:
        quantize_dynamic_onnx(src, dst)
        reached = _agreement(ref, _outputs(dst, feeds))
        excluded: list[str] = []
        if reached < target:
            log(f"int8 agrees with fp32 on {reached:.4f} of the calibration sample (< {target:.4f}): ranking "
                f"{len(nodes)} MatMuls by how much int8 moves the answers")
            ranked = []
            for node in nodes:
                quantize_dynamic_onnx(src, trial, nodes_to_quantize=[node])
                ranked.append((_kl(ref, _outputs(trial, feeds)), node))
            ranked.sort(reverse=True)
            for _score, node in ranked[:max(1, int(MAX_FALLBACK * len(nodes)))]:
                excluded.append(node)
                quantize_dynamic_onnx(src, dst, nodes_to_exclude=excluded)
                reached = _agreement(ref, _outputs(dst, feeds))
                if reached >= target:
                    break
            log(f"mixed int8: {len(excluded)} of {len(nodes)} MatMuls in fp32, agreement {reached:.4f} on the sample")
    finally:
        trial.unlink(missing_ok=True)
    return {"quantization": {"method": "dynamic, accuracy-aware fp32 fallback", "weights": "int8, per channel",
                             "activations": "uint8, per call", "fp32_nodes": excluded, "quantized_nodes": len(nodes) - len(excluded),
                             "calibration_agreement": round(reached, 6), "calibration_target": target,
                             "calibration_batches": len(feeds)}}
