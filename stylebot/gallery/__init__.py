"""Style images made by this project's own code (``generate``) and the loader the bot reads them with
(``catalog``). Torch-free: Pillow and numpy only, so the chat process can list the gallery cheaply.
"""

from .catalog import GalleryStyle, load_gallery

__all__ = ["GalleryStyle", "load_gallery"]
