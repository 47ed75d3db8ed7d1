import os

# The learning tests assert seeded outcomes of hundreds of updates, and float rounding that differs between CPU
# kernels (AVX2, AVX-512, AMX) sends them down different paths: pin torch's, MKL's and oneDNN's x86 kernels to
# AVX2 (before torch loads), the kernels they were calibrated with, whatever x86 machine runs them. Elsewhere
# these are ignored.
for _var, _isa in (("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_CBWR", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "AVX2")):
    os.environ.setdefault(_var, _isa)

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file in the home folder during tests
# One torch thread: on a shared 2-core machine two threads fighting for one core run 5-10x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_hf_model(tmp_path_factory):
    """A small random Llama with a BPE tokenizer trained on the spot: the hf backend without any download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    import arenas

    corpus = []
    for name in arenas.names():
        env = arenas.make(name)
        env.reset(seed=0)
        corpus.append(env.observe(env.agent_selection)["text"])
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus * 3, trainers.BpeTrainer(vocab_size=512, special_tokens=["<unk>", "<eos>", "<pad>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, bos_token_id=None)
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory):
    """An MLflow SQLite store migrated once per session: migrating a fresh database takes seconds, copying it none."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    client.search_experiments(max_results=1)  # creates and migrates the tables
    client._tracking_client.store.engine.dispose()  # nothing left open on the file before it is copied
    return path


@pytest.fixture
def mlflow_store(tmp_path, mlflow_template_db):
    """A fresh MLflow store for one test: a copy of the migrated database, and an experiment "test" whose
    artifacts go under tmp_path (not ./mlruns). Pass ``tracking_uri=store.uri, experiment=store.experiment``."""
    import shutil
    from types import SimpleNamespace

    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copyfile(mlflow_template_db, db)
    uri = f"sqlite:///{db.resolve()}"
    client = MlflowClient(uri)
    artifacts = tmp_path / "mlartifacts"
    experiment_id = client.create_experiment("test", artifact_location=artifacts.resolve().as_uri())
    return SimpleNamespace(uri=uri, client=client, experiment="test", experiment_id=experiment_id, artifacts=artifacts)
