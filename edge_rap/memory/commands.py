"""`edge-rap backup` and `edge-rap restore`: their arguments and what they print (cli.py calls `register`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edge_rap.output import json_line
from edge_rap.wording import counted

LEFT_OUT = ("the model cache, the demo, serve.json (where this device's `serve` listens) and, unless --with-token, the "
            "companion API's token (a backup on a USB stick must not carry the key to the house)")


def cmd_backup(args) -> int:
    from edge_rap.cli import _existing_memory, _progress, _settings
    from edge_rap.daemon.events import EVENTS_DB, LOG_FIX
    from edge_rap.memory.backup import back_up

    settings = _settings(args)
    _existing_memory(args, settings)
    report = back_up(settings.memory, Path(args.file), args.force, args.with_token, _progress("backup"),
                     args.anywhere)
    if args.json:
        print(json_line(report.to_json()))
    else:
        c = report.counts
        print(f"backed up {counted(c.concepts, 'concept')}, {counted(c.views, 'photo view')} and "
              f"{counted(c.events, 'event')} to {report.path} "
              f"({report.bytes} bytes)")
    for name in report.missing:
        if name == EVENTS_DB:
            print(f"edge-rap: the event log {EVENTS_DB} is damaged ({report.log_damage}), not backed up: "
                  f"{LOG_FIX}; then back up again", file=sys.stderr)
        else:
            print(f"edge-rap: stored photo missing or damaged, not backed up: {name}", file=sys.stderr)
    return 1 if report.missing else 0  # as export-rap: a script sees that something did not go in


def cmd_restore(args) -> int:
    from edge_rap.cli import _progress, _settings
    from edge_rap.memory.restore import restore

    settings = _settings(args)
    report = restore(Path(args.file), settings.memory, args.replace, _progress("restore"))
    if args.json:
        print(json_line(report.to_json()))
    else:
        c, made = report.counts, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.created))
        aside = f"; the memory there before was moved to {report.aside}" if report.aside else ""
        token = ("; the companion API's token is the backup's: phones paired since it was made need pairing again "
                 "(edge-rap pair)") if report.token else ""
        print(f"restored {counted(c.concepts, 'concept')}, {counted(c.views, 'photo view')} and "
              f"{counted(c.events, 'event')}, backed up {made}, "
              f"into {report.memory}{aside}{token}")
    if report.opened_meanwhile is not None:
        shown = f"pid {report.opened_meanwhile}" if report.opened_meanwhile > 0 else "another process"
        print(f"edge-rap: {shown} opened the memory while it was restored and goes on with the one moved aside, "
              f"{report.aside}: restart it", file=sys.stderr)
    return 0


def register(add) -> None:
    p = add("backup", cmd_backup, "write the memory to one file, consistent while `run` or `serve` write: its "
            f"concepts, photos, faces, index and event log; left out: {LEFT_OUT}")
    p.add_argument("file", metavar="FILE", help="the backup to write: a tar file, gzip-compressed where its name ends "
                   "in .gz (.tar.gz) or .tgz (photos hardly compress; .zip, .xz and the like are refused); "
                   "written whole or not at all")
    p.add_argument("--force", action="store_true", help="replace FILE where it exists")
    p.add_argument("--anywhere", action="store_true", help="write FILE in a folder under /media, /mnt or /run/media "
                   "that no drive is mounted on (refused without it: a USB stick not mounted, the backup would go on "
                   "the SD card, hidden once the stick is mounted over it)")
    p.add_argument("--with-token", action="store_true", help="also the companion API's token (phones paired with "
                   "this device stay paired with a restored one)")
    p.add_argument("--json", action="store_true", help="one JSON object: path, bytes, concepts, views, events, sha256 "
                   "(of the file), missing (stored photos missing or damaged, and events.sqlite where the event log is "
                   "damaged: not backed up)")
    p = add("restore", cmd_restore, "put a backup back as the memory, every file checked before the memory is touched; "
            "refused while `run` or `serve` has it open")
    p.add_argument("file", metavar="FILE", help="a file `edge-rap backup` wrote")
    p.add_argument("--replace", action="store_true", help="where --memory holds a memory: move it aside whole, to "
                   "<memory>.before-restore-<UTC time> beside it, and restore in its place")
    p.add_argument("--json", action="store_true", help="one JSON object: memory, aside (where the memory before "
                   "went, or null), concepts, views, events, created (when the backup was made, Unix seconds), "
                   "token (whether it brought the companion API's token, which replaced the device's)")
