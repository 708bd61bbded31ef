#!/usr/bin/env bash
# The Dockerfile's build stage without a Docker engine.
#
# `docker build` sees only what the build stage COPYs, so a file the build
# needs but the Dockerfile forgets (an include_str!, a new top-level
# directory) breaks the image while `cargo build` in the repository still
# passes. This script copies exactly the build stage's COPY set into an
# empty directory, runs the stage's RUN lines there (`cargo build --release
# --locked`), and checks the image's and the compose example's configs with
# the binary it produced.
#
# The build reuses the repository's target directory (CARGO_TARGET_DIR,
# default ./target) so dependencies are not rebuilt; only wsgate itself is
# compiled again, from the copied sources.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}

die() {
    echo "docker-context-build: $*" >&2
    exit 1
}

# The lines of stage number $1 (1 = the build stage), continuations joined.
stage() {
    sed -e ':a' -e '/\\$/N; s/\\\n//; ta' Dockerfile | awk -v want="$1" '/^FROM /{n++} n==want'
}

# The WORKDIR of the build stage (where relative COPY targets land).
workdir=$(stage 1 | awk '$1=="WORKDIR"{w=$2} END{print w}')
[[ -n $workdir ]] || die "the build stage has no WORKDIR"

# Copies one COPY line's sources into the context, as `docker build` would.
copy_line() {
    local -a words=("$@")
    local dest=${words[-1]} count=$((${#words[@]} - 1)) src target
    [[ ${words[0]} != --* ]] || die "COPY flags are not supported: ${words[*]}"
    dest=${dest#"$workdir"/}
    [[ $dest != /* ]] || die "COPY outside WORKDIR: $dest"
    target=$context/${dest#./}
    for src in "${words[@]:0:count}"; do
        [[ -e $src ]] || die "COPY source missing from the repository: $src"
        if [[ $dest == */ || $count -gt 1 ]]; then
            mkdir -p "$target" && cp -a "$src" "$target/"
        elif [[ -d $src ]]; then
            mkdir -p "$target" && cp -a "$src/." "$target/"
        else
            mkdir -p "$(dirname "$target")" && cp -a "$src" "$target"
        fi
    done
}

while read -r instruction rest; do
    case $instruction in
    COPY)
        read -ra words <<<"$rest"
        copy_line "${words[@]}"
        ;;
    ADD) die "ADD in the build stage is not supported" ;;
    esac
done < <(stage 1)
echo "context: $(cd "$context" && find . -maxdepth 1 -mindepth 1 | sort | tr '\n' ' ')"

# The build stage's RUN lines, verbatim, inside the copied context.
while read -r instruction command; do
    [[ $instruction == RUN ]] || continue
    [[ $command != --* ]] || die "RUN flags are not supported: $command"
    echo "RUN $command"
    (cd "$context" && bash -euo pipefail -c "$command")
done < <(stage 1)

# What the runtime stage takes from the build stage must exist.
binary=
while read -r from source _; do
    [[ $from == --from=build ]] || continue
    relative=${source#"$workdir"/}
    produced=$context/$relative
    [[ $relative == target/* ]] && produced=$CARGO_TARGET_DIR/${relative#target/}
    [[ -e $produced ]] || die "the runtime stage copies $source, which the build did not produce"
    [[ $source == */wsgate ]] && binary=$produced
done < <(stage 2 | awk '$1=="COPY"{$1=""; print}')
[[ -n $binary ]] || die "the runtime stage copies no wsgate binary"

# The runtime stage's own COPYs come from the repository.
while read -r source _; do
    [[ -e $source ]] || die "the runtime stage copies $source, which does not exist"
done < <(stage 2 | awk '$1=="COPY" && $2 !~ /^--/ {print $2}')

"$binary" check --config config/container.toml
"$binary" check --config examples/compose/wsgate.toml
# The cluster example's config, where compose puts it: next to a secret
# file, with its advertised address in the environment.
cluster_dir=$(mktemp -d)
cp examples/cluster/wsgate.toml "$cluster_dir/"
openssl rand -hex 32 >"$cluster_dir/cluster.secret"
WSGATE_ADVERTISE=wsgate-1:9443 "$binary" check --config "$cluster_dir/wsgate.toml"
rm -rf "$cluster_dir"
"$binary" health --help >/dev/null
echo "docker-context-build: ok ($binary)"
