"""A real inference on a trivial Python-backend model, loaded through explicit model control."""

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.integration.conftest import ModelFactory
from tonewatch.config import Settings

pytestmark = pytest.mark.integration

CONFIG = """\
backend: "python"
max_batch_size: 16
input [{ name: "TEXT", data_type: TYPE_STRING, dims: [1] }]
output [{ name: "LENGTH", data_type: TYPE_INT32, dims: [1] }]
dynamic_batching { max_queue_delay_microseconds: 1000 }
instance_group [{ kind: KIND_CPU, count: 1 }]
"""

MODEL = """\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            lengths = np.array([[len(t[0].decode("utf-8"))] for t in texts], dtype=np.int32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("LENGTH", lengths)]))
        return responses
"""


def test_inference_on_a_model_the_test_built(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = python_model(CONFIG, MODEL, "1")
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        assert client.is_model_ready(name)
        texts = ["hello", "héllo wörld", ""]
        batch = np.array([[t.encode()] for t in texts], dtype=np.object_)
        tensor = grpcclient.InferInput("TEXT", list(batch.shape), "BYTES")
        tensor.set_data_from_numpy(batch)
        result = client.infer(name, [tensor], timeout=30)
        lengths = result.as_numpy("LENGTH")
        assert lengths is not None
        assert lengths.ravel().tolist() == [len(t) for t in texts]
        assert result.get_response().model_version == "1"
    finally:
        client.close()


def test_repository_is_explicitly_controlled(
    settings: Settings, python_model: ModelFactory
) -> None:
    name = python_model(CONFIG, MODEL, "1")
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        index = {m.name: m.state for m in client.get_model_repository_index().models}
        assert index[name] == "READY"
        client.unload_model(name)
        assert not client.is_model_ready(name)
        client.load_model(name)
        assert client.is_model_ready(name)
    finally:
        client.close()


def test_server_metadata_reports_its_version(settings: Settings) -> None:
    client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
    try:
        assert client.is_server_ready()
        assert client.get_server_metadata().version.count(".") == 2
    finally:
        client.close()
