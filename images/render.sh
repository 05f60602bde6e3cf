#!/usr/bin/env bash
# Render the diagrams in this folder from their sources:
#   fault_tolerance.dot                   -> fault_tolerance.png                   (Graphviz)
#   deployment.dot                        -> deployment.png                        (Graphviz)
#   fault_tolerance_sequence_diagram.puml -> fault_tolerance_sequence_diagram.png  (PlantUML)
# Installs Graphviz and PlantUML from Debian's packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v dot >/dev/null || missing+=(graphviz)
command -v plantuml >/dev/null || missing+=(plantuml)
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

dot -Tpng -Gdpi=110 fault_tolerance.dot -o fault_tolerance.png
dot -Tpng -Gdpi=110 deployment.dot -o deployment.png
plantuml -tpng fault_tolerance_sequence_diagram.puml
echo "rendered: fault_tolerance.png fault_tolerance_sequence_diagram.png"
