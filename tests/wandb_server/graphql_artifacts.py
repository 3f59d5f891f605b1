"""Artifact operations: what `run.log({"t": wandb.Table(...)})` + `run.finish()` needs.

A logged table becomes an artifact of type `run_table` named `run-<run id>-<key>`. The SDK's flow:
CreateArtifact -> CreateArtifactManifest (upload URL for the manifest) -> CreateArtifactFiles
(upload URLs for the table files) -> PUT the files and the manifest -> CommitArtifact.
Upload URLs point back at this server under /_storage/ (real W&B hands out signed bucket URLs,
which carry no W&B auth either).
"""

from __future__ import annotations

from typing import Any, Dict

from .graphql import Context, GraphQLError, operation


def _manifest_payload(ctx: Context, artifact_id: str) -> Dict[str, Any]:
    url = "{}/_storage/artifact/{}/manifest".format(ctx.base_url, artifact_id)
    return {
        "artifactManifest": {
            "id": artifact_id + "-manifest",
            "file": {"id": artifact_id + "-manifest-file", "uploadUrl": url, "uploadHeaders": []},
        }
    }


@operation("CreateArtifact")
def create_artifact(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given CreateArtifactInput, register a PENDING artifact (state PENDING means: do upload)."""
    spec = variables.get("input") or {}
    key = ctx.store.resolve(spec.get("entityName"), spec.get("projectName"), spec.get("runName") or "")
    # wandb-core sends the singular artifactCollectionName (the plural field is null).
    names = spec.get("artifactCollectionNames") or [spec.get("artifactCollectionName") or "unnamed"]
    artifact = ctx.store.create_artifact(
        key, names[0], spec.get("artifactTypeName") or "", spec.get("digest") or ""
    )
    # latestArtifact null: no previous version, so the SDK uploads a full manifest (no base artifact).
    return {
        "createArtifact": {
            "artifact": {
                "id": artifact["id"],
                "state": "PENDING",
                "artifactSequence": {"latestArtifact": None},
            }
        }
    }


@operation("CreateArtifactManifest")
def create_artifact_manifest(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    return {"createArtifactManifest": _manifest_payload(ctx, variables["artifactID"])}


@operation("UpdateArtifactManifest")
def update_artifact_manifest(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    artifact_id = str(variables["artifactManifestID"]).replace("-manifest", "")
    return {"updateArtifactManifest": _manifest_payload(ctx, artifact_id)}


@operation("CreateArtifactFiles")
def create_artifact_files(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    """Given the artifact's files, return one upload URL each (no multipart: files are small)."""
    edges = []
    for spec in (variables.get("input") or {}).get("artifactFiles") or []:
        artifact_id, name = spec["artifactID"], spec["name"]
        url = "{}/_storage/artifact/{}/file/{}".format(ctx.base_url, artifact_id, name)
        edges.append(
            {
                "node": {
                    "storagePath": "artifacts/{}/{}".format(artifact_id, name),
                    "uploadUrl": url,
                    "uploadHeaders": [],
                    "uploadMultipartUrls": None,
                    "artifact": {"id": artifact_id},
                }
            }
        )
    return {"createArtifactFiles": {"files": {"edges": edges}}}


@operation("CommitArtifact")
def commit_artifact(ctx: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    artifact = ctx.store.commit_artifact(variables["artifactID"])
    if artifact is None:
        raise GraphQLError(404, "artifact {} not found".format(variables["artifactID"]))
    return {"commitArtifact": {"artifact": {"id": artifact["id"], "digest": artifact["digest"]}}}


@operation("FetchArtifactDigestAlgorithm")
def digest_algorithm(_: Context, __: Dict[str, Any]) -> Dict[str, Any]:
    # No collection yet -> the SDK uses its default (MD5-based) digest.
    return {"project": {"artifactType": None}}


@operation("UseArtifact")
def use_artifact(_: Context, variables: Dict[str, Any]) -> Dict[str, Any]:
    spec = variables.get("input") or {}
    return {"useArtifact": {"artifact": {"id": spec.get("artifactID")}}}


@operation("ArtifactType")
def artifact_type(_: Context, __: Dict[str, Any]) -> Dict[str, Any]:
    # Sent by the Python side of `log_artifact` to check that an existing artifact of that name has
    # the same type; project null = "no such artifact yet", which always passes.
    return {"project": None}
