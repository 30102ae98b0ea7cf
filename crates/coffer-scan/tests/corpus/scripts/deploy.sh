#!/bin/sh
set -eu
export GITLAB_TOKEN=glpat-KLzdocJ2isAjIhKtJ0Rl
export REGISTRY_PASSWORD="$(cat /run/secrets/registry)"
curl -H "PRIVATE-TOKEN: $GITLAB_TOKEN" https://gitlab.example.invalid/api/v4/projects
