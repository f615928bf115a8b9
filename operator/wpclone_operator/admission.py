"""What a WordPressClone may ask for, beyond what its schema checks: an image and a host from the
operator's allowlists (a clone runs the image it names, and answers at the host it names)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from wpclone_common import constants
from wpclone_common.resources import WordPressClone
from wpclone_operator.settings import Settings


def refusal(clone: WordPressClone, settings: Settings) -> tuple[str, str] | None:
    """(reason, message) when the clone asks for what this operator does not allow, else None."""
    image = clone.spec.image
    allowed_images = settings.allowed_images or [settings.wordpress_image]
    if image and not any(fnmatchcase(image, pattern) for pattern in allowed_images):
        return constants.IMAGE_NOT_ALLOWED, (f"image {image} is not allowed here (allowed: "
                                             f"{', '.join(allowed_images)})")
    host = (clone.spec.host or "").lower()
    allowed_hosts = [f"*.{settings.base_domain}", *settings.allowed_hosts]
    if host and not any(fnmatchcase(host, pattern.lower()) for pattern in allowed_hosts):
        return constants.HOST_NOT_ALLOWED, f"host {host} is not allowed here (allowed: {', '.join(allowed_hosts)})"
    return None
