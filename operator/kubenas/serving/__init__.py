"""``kubenas serve``: the best model of a search over the Open Inference Protocol (V2 REST,
as KServe, Triton and Seldon MLServer speak it), on FastAPI + uvicorn (docs/serving.md).

* ``signature``: what an exported model takes and gives (tensor names, datatypes,
  shapes with -1 for free dimensions) and how its raw output becomes the response's
  tensors, per task: the one place a new task's signature is added;
* ``model``: where the model file is (a run directory, a trial, a folder, an experiment's
  artifacts, an object-store URL) and loading it (onnxruntime for ONNX, torch.jit for TorchScript);
* ``protocol``: V2 requests decoded and checked against the signature, responses encoded
  (JSON, and the binary tensor extension tritonclient uses); pure functions;
* ``batching``: dynamic batching of concurrent requests; the model run off the event loop
  when a run costs more than handing it to a thread;
* ``app``: the FastAPI application (routes, metrics, body limit, error bodies).
"""
