# shellcheck shell=bash
# Stand-in of /usr/share/univention-lib/all.sh (tests only); see ../../../README.md.
STANDIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"

ucs_registerLDAPExtension() {
    python3 "${STANDIN_DIR}/registry.py" "$@"
}

stop_udm_cli_server() {
    echo '{"tool": "stop_udm_cli_server"}' >>"${UCS_STANDIN_STATE}/calls.log"
}

is_ucr_true() {
    case "$(ucr get "$1")" in
        1 | yes | true | enable | enabled | on) return 0 ;;
        *) return 1 ;;
    esac
}
