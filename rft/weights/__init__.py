"""Weight sync: the learners' weights into the rollout engines after every update.

One component, `rft.weights.sync.WeightSyncer` (open, push a version, restore a restarted
engine, close), with the transports behind it. The controller calls `push` once per step and
knows nothing of transports; `RolloutGroup` restores a restarted actor through it.

Modes (`rollout.weight_sync`, resolved and checked by `rft.weights.modes`; `rft.config.validate`
calls the check):

- `folder` (CPU default): learner rank 0 writes a safetensors checkpoint under `/dev/shm`, each
  engine reloads it in place (`rft.weights.folder`); one node only, checked when opened.
- `gloo`: streamed through vLLM's weight-transfer API over torch's gloo broadcast (CPU, any
  node; `rft.weights.gloo`).
- `nccl` / `ipc` (GPU; `auto` picks ipc when learners and engines share GPUs, else nccl):
  vLLM's own weight-transfer backends behind the same handshake.

LoRA (`learner.lora.rank > 0`): every mode moves the adapter only. `folder` writes an adapter
folder that each engine serves as a new LoRARequest; `gloo` streams the adapter's tensors, which
the engine's receiver writes as such a folder (`rft.weights.gloo`); vLLM's nccl/ipc receivers
load model weights only, so LoRA on GPUs streams over gloo. The bytes a push reports are those
each engine counted on arrival (weight files read, buffers received), not the sender's metadata.

Where each piece runs:

- controller: `sync` (the component, and `EngineTransferClient`, the handshake's control plane,
  which it hands to learner rank 0), `modes`, `folder` (location, one-node check);
- learner ranks: `stream` (`CheckpointWeightSource`, the senders), `errors.NonFiniteWeights`
  raised by their NaN/inf check before anything is written or sent;
- rollout actors and vLLM's worker processes: `vllm_worker` (folder reload, end of a streamed
  update, tied LM head re-tied, worker extension) and the gloo receiver in `gloo`.

Only `modes`, `folder`, `errors` and `sync` are imported on the controller; `stream`, `gloo` and
`vllm_worker` import vLLM and are imported where they run.
"""
