"""Family entries, one module per family. Adding a family means adding a module here."""

from engine_service.models.families.auraflow import AURAFLOW
from engine_service.models.families.bria import BRIA
from engine_service.models.families.chroma import CHROMA
from engine_service.models.families.flux import FLUX, FLUX_FILL, FLUX_KONTEXT
from engine_service.models.families.flux2 import FLUX2, FLUX2_KLEIN
from engine_service.models.families.lumina import LUMINA, LUMINA2
from engine_service.models.families.pixart import PIXART
from engine_service.models.families.qwen_image import QWEN_IMAGE, QWEN_IMAGE_EDIT, QWEN_IMAGE_EDIT_PLUS
from engine_service.models.families.sana import SANA
from engine_service.models.families.sd3 import SD3
from engine_service.models.families.wan import WAN
from engine_service.models.families.z_image import Z_IMAGE
from engine_service.models.spec import FamilySpec

#: Every supported family, looked up by pipeline class name.
FAMILIES: tuple[FamilySpec, ...] = (
    FLUX,
    FLUX_FILL,
    FLUX_KONTEXT,
    WAN,
    QWEN_IMAGE,
    QWEN_IMAGE_EDIT,
    QWEN_IMAGE_EDIT_PLUS,
    SD3,
    PIXART,
    AURAFLOW,
    CHROMA,
    BRIA,
    SANA,
    LUMINA,
    LUMINA2,
    Z_IMAGE,
    FLUX2,
    FLUX2_KLEIN,
)

__all__ = ["FAMILIES"]
