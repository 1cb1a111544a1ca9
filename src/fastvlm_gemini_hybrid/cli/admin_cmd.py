"""`cache stats|clear`, `audit verify|head`, `config show`: housekeeping commands."""

from __future__ import annotations

import argparse

from .common import add_json_flag, emit, settings_from_args


def _cache_stats(args: argparse.Namespace) -> int:
    from ..cache import ResultCache

    settings = settings_from_args(args)
    cache = ResultCache(settings.cache_path, settings.cache_ttl_s)
    try:
        stats = cache.stats()
    finally:
        cache.close()
    text = (
        f"{stats.entries} entries ({stats.bytes / 1024:.1f} KiB), {stats.expired} expired; "
        f"{stats.hits} hits, {stats.misses} misses\n{stats.path}"
    )
    emit(args, stats.to_dict(), text)
    return 0


def _cache_clear(args: argparse.Namespace) -> int:
    from ..cache import ResultCache

    settings = settings_from_args(args)
    cache = ResultCache(settings.cache_path, settings.cache_ttl_s)
    try:
        removed = cache.clear()
    finally:
        cache.close()
    emit(args, {"removed": removed}, f"removed {removed} cached results")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from ..audit import AuditLog

    settings = settings_from_args(args)
    report = AuditLog(settings.audit_path).verify()
    if report.ok:
        text = f"audit trail intact: {report.records} records ({settings.audit_path})"
        if report.notes:  # what a crash leaves: reported, not an error
            text += "\n" + "\n".join(f"note: {n}" for n in report.notes)
    else:
        text = f"audit trail TAMPERED ({len(report.problems)} problems):\n" + "\n".join(report.problems)
    emit(args, report.to_dict(), text)
    return 0 if report.ok else 1


def _audit_head(args: argparse.Namespace) -> int:
    from ..audit import AuditLog

    settings = settings_from_args(args)
    head = AuditLog(settings.audit_path).head()
    text = f"record {head['seq']}  mac {head['hash']}  head-mac {head['mac']}"
    emit(args, head, text)
    return 0


def _config_show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    data = settings.redacted()
    width = max(len(k) for k in data)
    emit(args, data, "\n".join(f"{k.ljust(width)}  {v}" for k, v in data.items()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    cache = sub.add_parser("cache", help="the result cache").add_subparsers(dest="action", metavar="ACTION")
    cache.required = True
    for name, fn, text in (("stats", _cache_stats, "entries, size, hits"), ("clear", _cache_clear, "remove all")):
        p = cache.add_parser(name, help=text)
        add_json_flag(p)
        p.set_defaults(handler=fn)

    audit = sub.add_parser("audit", help="the HMAC-chained audit trail").add_subparsers(dest="action", metavar="ACTION")
    audit.required = True
    p = audit.add_parser("verify", help="check that no record was edited or removed (exit 1 if one was)")
    add_json_flag(p)
    p.set_defaults(handler=_audit_verify)
    p = audit.add_parser("head", help="the last record's MAC, to copy elsewhere now and then (anchoring)")
    add_json_flag(p)
    p.set_defaults(handler=_audit_head)

    config = sub.add_parser("config", help="settings").add_subparsers(dest="action", metavar="ACTION")
    config.required = True
    p = config.add_parser("show", help="effective settings, secrets redacted")
    add_json_flag(p)
    p.set_defaults(handler=_config_show)
