"""Audio sources: what the coordinator decodes or captures once for every phone."""

from server.sources.base import Report, Source, SourceError, SourceSpec


def create(spec: SourceSpec, report: Report) -> Source:
    """The Source object for `spec` (not opened yet)."""
    match spec.kind:
        case "demo":
            from server.sources.demo import DemoSource

            return DemoSource(spec, report)
        case "file":
            from server.sources.decode import FileSource

            return FileSource(spec, report)
        case "playlist":
            from server.sources.playlist import PlaylistSource

            return PlaylistSource(spec, report)
        case "url":
            from server.sources.decode import UrlSource

            return UrlSource(spec, report)
        case "system" | "mic":
            from server.sources.capture import CaptureSource

            return CaptureSource(spec, report)
        case "silence":
            from server.sources.silence import SilenceSource

            return SilenceSource(spec, report)
    raise SourceError(f"Unknown source kind: {spec.kind!r}")


__all__ = ["Report", "Source", "SourceError", "SourceSpec", "create"]
