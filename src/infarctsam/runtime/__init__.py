"""Inference runtimes of the ``sam`` engine, apart from the network definitions in :mod:`infarctsam.model`.

- :mod:`~infarctsam.runtime.predictor`: the volume predictor (PyTorch, with the image encoder optionally in ONNX
  Runtime) and the choice of runtime;
- :mod:`~infarctsam.runtime.openvino_sam` exports the network in three parts, which
  :mod:`~infarctsam.runtime.openvino_parts` compiles and runs with OpenVINO (no PyTorch);
- :mod:`~infarctsam.runtime.onnx_trunk`: the image encoder's trunk in ONNX Runtime;
- :mod:`~infarctsam.runtime.export_cache`: the on-disk cache of exported parts, named after the weights;
- :mod:`~infarctsam.runtime.cache_entries`: verified cache entries (sha256 sidecars), read and written atomically;
- :mod:`~infarctsam.runtime.cache_listing`: what the cache holds and its pruning (``infarctsam cache``);
- :mod:`~infarctsam.runtime.determinism`: exact float32 on CUDA and the library versions of a run;
- :mod:`~infarctsam.runtime.slices`: the slice stack all runtimes share.

Data flow one way: ``predictor`` -> ``openvino_sam`` -> ``openvino_parts`` -> ``slices`` / ``export_cache`` ->
``cache_entries`` (read by ``cache_listing``).
"""
