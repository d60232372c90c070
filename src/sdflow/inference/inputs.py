"""What a batch command processes: image files, folders and glob patterns expanded into
:class:`Job` s (source file and its path below the input root), with one line for each
input that matched nothing."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from sdflow.imageio import IMAGE_EXTENSIONS, why_not_a_file


@dataclass(frozen=True)
class Job:
    source: Path
    rel: Path  # relative path of the source below its input root (name kept)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _inside(path: Path, folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def collect_inputs(inputs: list[str], recursive: bool = False, exclude: Path | None = None
                   ) -> tuple[list[Job], list[str]]:
    """Expand files, folders (``recursive``: with subfolders) and glob patterns into jobs.
    Folder and glob results keep their path below the folder / the pattern's fixed
    prefix; files below ``exclude`` (the output folder) and hidden files are left out.
    Returns the jobs and one error line per input that matched nothing."""
    jobs: list[Job] = []
    errors: list[str] = []
    seen: set[Path] = set()

    def add(path: Path, rel: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            jobs.append(Job(path, rel))

    for text in inputs:
        path = Path(text)
        if path.is_file():
            add(path, Path(path.name))
        elif path.is_dir():
            found = path.rglob("*") if recursive else path.glob("*")
            images = sorted(p for p in found if p.is_file() and _is_image(p)
                            and not any(part.startswith(".") for part in
                                        p.relative_to(path).parts))
            files = [p for p in images if not _inside(p, exclude)]
            if images and not files:
                errors.append(f"{path}: its images are all inside the output folder "
                              f"{exclude}; choose an output folder outside the inputs")
            elif not files:
                errors.append(f"{path}: no images in this folder"
                              + ("" if recursive else " (use --recursive for subfolders)"))
            for p in files:
                add(p, p.relative_to(path))
        elif glob.has_magic(text):
            base = Path(*[p for p in Path(text).parts[: _magic_index(text)]]) \
                if _magic_index(text) else Path(".")
            files = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in files if p.is_file() and _is_image(p)
                     and not _inside(p, exclude)]
            if not files:
                errors.append(f"{text}: the pattern matches no images")
            for p in files:
                try:
                    rel = p.relative_to(base)
                except ValueError:
                    rel = Path(p.name)
                add(p, rel)
        else:
            errors.append(f"{text}: {why_not_a_file(text)}")
    return jobs, errors


def _magic_index(pattern: str) -> int:
    parts = Path(pattern).parts
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return i
    return len(parts)

