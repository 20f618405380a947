"""The cluster configs: the launcher YAML against the schema Ray ships, the KubeRay
manifests' required fields, and the entrypoints against the real CLI."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
RAYJOBS = {
    stage: CLUSTER / "kuberay" / f"rayjob-{stage}.yaml" for stage in ("extract", "train", "render")
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def ray_version() -> str:
    import ray

    return ray.__version__


def test_launcher_yaml_validates_against_rays_schema():
    import jsonschema
    import ray
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = load(CLUSTER / "cluster.yaml")
    jsonschema.validate(config, schema)
    validate_config(fillout_defaults(config))  # the checks `ray up` runs before launching


def test_launcher_yaml_has_cpu_free_head_and_labelled_autoscaling_groups():
    config = load(CLUSTER / "cluster.yaml")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert types["cpu"]["labels"] == {"node-kind": "cpu"}
    assert types["gpu"]["labels"] == {"node-kind": "gpu"}
    assert types["gpu"]["node_config"]["InstanceType"].startswith(("g", "p"))  # GPU family
    for name in ("cpu", "gpu"):
        assert types[name]["min_workers"] == 0 < types[name]["max_workers"]
    assert f"ray:{ray_version()}" in config["docker"]["image"]
    assert any("ray[default]" in c or "[cluster]" in c for c in config["setup_commands"])
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start  # the Jobs API only via the SSH tunnel
    assert "RAY_AUTH_MODE=token" in head_start and "--num-cpus=0" in head_start
    assert "~/.ray/auth_token" in config["file_mounts"].values()


def check_pod(template: dict, gpus: int) -> None:
    (container,) = template["spec"]["containers"]
    assert container["image"] and container["name"]
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]
    assert resources["limits"] == resources["requests"]  # Ray reads its resources from them
    assert int(resources["limits"].get("nvidia.com/gpu", 0)) == gpus


def check_cluster_spec(spec: dict) -> dict[str, dict]:
    assert spec["rayVersion"] == ray_version()
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"  # 8265 stays inside the cluster
    check_pod(head["template"], gpus=0)
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    for name, group in groups.items():
        assert isinstance(group["rayStartParams"], dict)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        assert group["labels"] == {"node-kind": name}  # what --label-selector matches
        check_pod(group["template"], gpus=1 if name == "gpu" else 0)
        if name == "gpu":
            tolerations = group["template"]["spec"]["tolerations"]
            assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
    images = {c["image"] for c in _containers(spec)}
    assert len(images) == 1 and ray_version() in next(iter(images))
    return groups


def _containers(spec: dict) -> list[dict]:
    pods = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    return [c for pod in pods for c in pod["spec"]["containers"]]


def test_raycluster_has_head_and_cpu_and_gpu_groups():
    manifest = load(CLUSTER / "kuberay" / "raycluster.yaml")
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayCluster"
    assert manifest["spec"]["enableInTreeAutoscaling"] is True
    assert manifest["spec"]["authOptions"] == {"mode": "token"}
    assert set(check_cluster_spec(manifest["spec"])) == {"cpu", "gpu"}


@pytest.mark.parametrize("stage", sorted(RAYJOBS))
def test_rayjob_runs_its_stage_on_the_right_group(stage):
    manifest = load(RAYJOBS[stage])
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayJob"
    spec = manifest["spec"]
    assert spec["submissionMode"] == "K8sJobMode" and spec["shutdownAfterJobFinishes"] is True
    assert yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    groups = check_cluster_spec(spec["rayClusterSpec"])
    assert set(groups) == ({"cpu"} if stage == "extract" else {"gpu"})
    argv = shlex.split(spec["entrypoint"])
    assert argv[:4] == ["python", "-m", "pipelines.cli", stage]


def entrypoint_config(entrypoint: str) -> object:
    """The config the CLI would run the entrypoint's stage with, built without running it.

    The entrypoint is parsed by the stage's command, as `rayswap` parses it, and its values
    go through the same `build` the command calls: a flag the command does not have, or a
    value the stage's config refuses, raises the usage error (exit code 2) the CLI exits with.
    """
    import typer

    from pipelines.cli import app
    from pipelines.cli.app import build
    from tests.test_cli_flags import COMMANDS

    argv = shlex.split(entrypoint)
    assert argv[:3] == ["python", "-m", "pipelines.cli"], argv
    stage, args = argv[3], argv[4:]
    group = typer.main.get_command(app)
    assert stage in group.commands, f"the entrypoint runs `rayswap {stage}`, which the CLI lacks"
    assert (stage,) in COMMANDS, f"no config is known for `rayswap {stage}`"
    with typer.Context(group, info_name="rayswap") as parent:
        ctx = group.commands[stage].make_context(stage, args, parent=parent)
        with ctx:
            return build(COMMANDS[(stage,)], ctx.params)


@pytest.mark.parametrize("stage", sorted(RAYJOBS))
def test_rayjob_entrypoint_builds_its_stages_config(stage):
    config = entrypoint_config(load(RAYJOBS[stage])["spec"]["entrypoint"])
    assert type(config).__name__ == f"{stage.capitalize()}Config"
    if stage == "extract":  # its job has only the CPU group; the actors go there
        assert config.label_selector == "node-kind=cpu" and not config.gpu
    else:  # train and render jobs have only the GPU group
        assert config.gpu


@pytest.mark.parametrize(
    ("entrypoint", "refused"),
    [
        ("python -m pipelines.cli shuffle s3://b/v/ --out s3://b/o/", "shuffle"),
        ("python -m pipelines.cli extract s3://b/v/ --out s3://b/o/ --bogus 1", "--bogus"),
        ("python -m pipelines.cli extract s3://b/v/ --out s3://b/o/ --size 100", "--size"),
        ("python -m pipelines.cli train --a a --b b --out o --workers 0", "--workers"),
        ("python -m pipelines.cli render c/ v/ --out o --direction up", "--direction"),
    ],
    ids=["unknown stage", "unknown flag", "extract size", "train workers", "render direction"],
)
def test_an_entrypoint_the_cli_would_refuse_fails_the_check(entrypoint, refused):
    import typer

    with pytest.raises((AssertionError, typer.TyperException)) as raised:
        entrypoint_config(entrypoint)
    error = raised.value
    if isinstance(error, typer.TyperException):
        assert error.exit_code == 2  # what `rayswap` exits with for a bad invocation
        assert refused in error.format_message()
    else:
        assert refused in str(error)


def test_runtime_env_ships_code_but_not_data():
    from cluster.submit import build_runtime_env, project_root

    runtime_env = build_runtime_env(env_vars={"EXTRA": "1"})
    assert runtime_env["working_dir"] == str(project_root())
    for pattern in (".git/", "tests/", "*.parquet", "*.mp4", ".venv/"):
        assert pattern in runtime_env["excludes"]
    assert runtime_env["env_vars"]["EXTRA"] == "1"
    assert not any(k.startswith("AWS_") for k in runtime_env["env_vars"])  # no secrets by default
