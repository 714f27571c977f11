#!/usr/bin/env bash
# Add CEST Studio to this user's desktop menu (no root): a .desktop entry that opens photos and
# videos (MimeType=image/... video/...: "Open with CEST Studio"), and the icon in every size.
#
#   bash packaging/install-desktop.sh [--default] [PROGRAM]   install (again: updates in place)
#   bash packaging/install-desktop.sh --uninstall             remove exactly what was installed
#
# PROGRAM: the bundle's executable or folder (dist/cest-studio/cest-studio), or a cest-studio
# command (the venv's .venv/bin/cest-studio). Default: dist/cest-studio/cest-studio when it
# exists, else `cest-studio` on PATH, else .venv/bin/cest-studio. Move the bundle where it is to
# stay before installing: the menu entry points at it.
# --default  also make CEST Studio the default application for these types (xdg-mime default);
#            without it, it is only offered in "Open with".
#
# Installs into ${XDG_DATA_HOME:-~/.local/share}: applications/cest-studio.desktop,
# icons/hicolor/{16x16..512x512,scalable}/apps/cest-studio.{png,svg}, and a manifest in
# cest-studio-desktop/ that --uninstall reads. Caches (update-desktop-database,
# gtk-update-icon-cache) are refreshed when those tools exist; what they create is removed again.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
APP_ID=cest-studio
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
CONFIG="${XDG_CONFIG_HOME:-$HOME/.config}"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
STATE="$DATA/cest-studio-desktop"
MANIFEST="$STATE/manifest"
SIZES=(16 24 32 48 64 128 256 512)
MIME_TYPES="$(sed -n 's/^MimeType=//p' "$HERE/$APP_ID.desktop" | tr ';' ' ')"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

UNINSTALL=0
DEFAULT=0
PROGRAM=""
for arg in "$@"; do
    case "$arg" in
        --uninstall) UNINSTALL=1 ;;
        --default) DEFAULT=1 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "unknown option $arg" >&2; usage >&2; exit 2 ;;
        *) PROGRAM="$arg" ;;
    esac
done

have() { command -v "$1" >/dev/null 2>&1; }

# The manifest: "KIND PATH" lines. dir: a folder we created (in creation order); file: a file we
# wrote; mimecache / mimeapps: a file that did not exist before we ran the tool that makes it.
RECORDS=()
record() { RECORDS+=("$1 $2"); }

make_dir() {  # mkdir -p, recording each folder it creates (outermost first)
    local dir="$1" missing=()
    while [[ ! -d "$dir" ]]; do missing=("$dir" ${missing[@]+"${missing[@]}"}); dir="$(dirname "$dir")"; done
    for dir in ${missing[@]+"${missing[@]}"}; do mkdir "$dir"; record dir "$dir"; done
}

install_file() {  # install_file SOURCE DEST
    make_dir "$(dirname "$2")"
    cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
    record file "$2"
}

refresh_caches() {
    if have update-desktop-database && [[ -d "$APPS" ]]; then
        update-desktop-database -q "$APPS" 2>/dev/null || true
    fi
    # GTK reads a per-user icon cache only when one exists: refresh it then (never create one).
    if [[ -f "$ICONS/icon-theme.cache" ]] && have gtk-update-icon-cache; then
        gtk-update-icon-cache -q -t -f "$ICONS" 2>/dev/null || true
    fi
    if [[ -d "$ICONS" ]]; then touch "$ICONS"; fi  # icon themes notice the new mtime
}

desktop_quote() {  # a path as one argument of a .desktop Exec line (spec: "Exec key")
    local s="$1"
    if [[ "$s" =~ ^[A-Za-z0-9_./+-]+$ ]]; then printf '%s' "$s"; return; fi
    s="${s//\\/\\\\\\\\}"; s="${s//\"/\\\\\"}"; s="${s//\`/\\\\\`}"; s="${s//\$/\\\\\$}"; s="${s//%/%%}"
    printf '"%s"' "$s"
}

remove_mimeapps_entries() {  # drop cest-studio.desktop from mimeapps.list; give back earlier defaults
    local list="$CONFIG/mimeapps.list" backup="$STATE/mimeapps-defaults.before"
    [[ -f "$list" ]] || return 0
    touch "$backup.empty"
    awk -v app="$APP_ID.desktop" '
        FNR == 1 { section = "" }
        FILENAME == ARGV[1] { if (index($0, "=")) before[substr($0, 1, index($0, "=") - 1)] = substr($0, index($0, "=") + 1); next }
        # headers and blank lines wait for a line of their section to be kept (no empty sections left)
        /^\[/ { section = $0; pending = pending $0 "\n"; next }
        /^[[:space:]]*$/ { pending = pending $0 "\n"; next }
        !index($0, "=") || /^#/ { printf "%s", pending; pending = ""; print; next }
        {
            key = substr($0, 1, index($0, "=") - 1); n = split(substr($0, index($0, "=") + 1), apps, ";")
            kept = ""
            for (i = 1; i <= n; i++) if (apps[i] != "" && apps[i] != app) kept = kept apps[i] ";"
            if (kept == "" && section == "[Default Applications]" && (key in before)) kept = before[key]
            if (kept != "") { printf "%s", pending; pending = ""; print key "=" kept }
        }' "$( [[ -f "$backup" ]] && echo "$backup" || echo "$backup.empty")" "$list" > "$list.tmp.$$"
    mv -f "$list.tmp.$$" "$list"
    rm -f "$backup" "$backup.empty"
}

remember_mimeapps_defaults() {  # the defaults xdg-mime is about to replace, for --uninstall
    local list="$CONFIG/mimeapps.list" backup="$STATE/mimeapps-defaults.before"
    [[ -f "$backup" ]] && return 0  # a reinstall: the first install's backup holds the real "before"
    if [[ -f "$list" ]]; then
        awk '/^\[/ { section = $0 } section == "[Default Applications]" && index($0, "=")' "$list" \
            | grep -v "=$APP_ID\.desktop;\{0,1\}\$" > "$backup" || true
    else
        : > "$backup"
    fi
}

uninstall() {
    if [[ ! -f "$MANIFEST" ]]; then
        echo "CEST Studio is not installed for this user (no $MANIFEST)"
        return 0
    fi
    local kind path
    remove_mimeapps_entries
    while read -r kind path; do
        if [[ "$kind" == file ]]; then rm -f "$path"; fi
    done < "$MANIFEST"
    refresh_caches
    while read -r kind path; do
        case "$kind" in
            # made by update-desktop-database for us: gone when it lists no application any more
            mimecache) if [[ -f "$path" ]] && ! grep -q '=' "$path"; then rm -f "$path"; fi ;;
            mimeapps) if [[ -f "$path" ]] && ! grep -q '=' "$path"; then rm -f "$path"; fi ;;
        esac
    done < "$MANIFEST"
    local dirs
    dirs="$(sed -n 's/^dir //p' "$MANIFEST" | tac)"
    rm -f "$MANIFEST"
    while read -r path; do
        if [[ -n "$path" ]]; then rmdir "$path" 2>/dev/null || true; fi  # kept when something else is in it
    done <<< "$dirs"
    if [[ -d "$STATE" ]]; then rmdir "$STATE" 2>/dev/null || true; fi
    echo "CEST Studio removed from the desktop menu"
}

find_program() {
    if [[ -n "$PROGRAM" ]]; then
        if [[ -d "$PROGRAM" ]]; then PROGRAM="$PROGRAM/cest-studio"; fi
    elif [[ -x "$ROOT/dist/cest-studio/cest-studio" ]]; then
        PROGRAM="$ROOT/dist/cest-studio/cest-studio"
    elif have cest-studio; then
        PROGRAM="$(command -v cest-studio)"
    elif [[ -x "$ROOT/.venv/bin/cest-studio" ]]; then
        PROGRAM="$ROOT/.venv/bin/cest-studio"
    else
        echo "error: no cest-studio program found: build the bundle (bash packaging/build.sh) or pass its path" >&2
        exit 1
    fi
    if [[ ! -f "$PROGRAM" || ! -x "$PROGRAM" ]]; then
        echo "error: $PROGRAM is not an executable program" >&2
        exit 1
    fi
    PROGRAM="$(cd "$(dirname "$PROGRAM")" && pwd)/$(basename "$PROGRAM")"
}

install() {
    find_program
    local line
    if [[ -f "$MANIFEST" ]]; then  # a reinstall: keep what the first one created
        while read -r line; do
            if [[ "$line" != file\ * ]]; then RECORDS+=("$line"); fi
        done < "$MANIFEST"
    fi
    make_dir "$STATE"
    if [[ ! -f "$APPS/mimeinfo.cache" ]]; then record mimecache "$APPS/mimeinfo.cache"; fi

    local desktop="$STATE/$APP_ID.desktop.tmp"
    sed -e "s|^Exec=.*|Exec=$(desktop_quote "$PROGRAM") %f|" -e "s|^TryExec=.*|TryExec=$PROGRAM|" \
        "$HERE/$APP_ID.desktop" > "$desktop"
    install_file "$desktop" "$APPS/$APP_ID.desktop"
    rm -f "$desktop"
    for size in "${SIZES[@]}"; do
        install_file "$HERE/icons/$APP_ID-$size.png" "$ICONS/${size}x${size}/apps/$APP_ID.png"
    done
    install_file "$HERE/icons/$APP_ID.svg" "$ICONS/scalable/apps/$APP_ID.svg"
    if have desktop-file-validate; then
        desktop-file-validate "$APPS/$APP_ID.desktop" || echo "warning: desktop-file-validate complained" >&2
    fi
    if [[ "$DEFAULT" == 1 ]]; then
        if have xdg-mime; then
            make_dir "$CONFIG"
            if [[ ! -f "$CONFIG/mimeapps.list" ]]; then record mimeapps "$CONFIG/mimeapps.list"; fi
            remember_mimeapps_defaults
            # shellcheck disable=SC2086 - one argument per type
            xdg-mime default "$APP_ID.desktop" $MIME_TYPES
        else
            echo "warning: no xdg-mime: CEST Studio is offered in 'Open with' but not made the default" >&2
        fi
    fi
    refresh_caches
    printf '%s\n' "${RECORDS[@]}" | awk '!seen[$0]++' > "$MANIFEST.tmp"
    mv -f "$MANIFEST.tmp" "$MANIFEST"
    echo "CEST Studio added to the desktop menu: $APPS/$APP_ID.desktop -> $PROGRAM"
}

if [[ "$UNINSTALL" == 1 ]]; then uninstall; else install; fi
