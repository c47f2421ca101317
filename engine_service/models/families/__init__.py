"""Family entries, one module per family. Adding a family means adding a module here."""

from engine_service.models.families.amused import AMUSED
from engine_service.models.families.cogview import COGVIEW3PLUS, COGVIEW4
from engine_service.models.families.dit import DIT
from engine_service.models.families.flux import FLUX
from engine_service.models.families.hidream import HIDREAM
from engine_service.models.families.hunyuandit import HUNYUANDIT
from engine_service.models.families.hunyuanimage import HUNYUANIMAGE
from engine_service.models.families.kandinsky5 import KANDINSKY5_IMAGE
from engine_service.models.families.omnigen import OMNIGEN
from engine_service.models.families.ovis_image import OVIS_IMAGE
from engine_service.models.families.prx import PRX
from engine_service.models.families.visualcloze import VISUALCLOZE
from engine_service.models.families.wan import WAN
from engine_service.models.spec import FamilySpec

#: Every supported family, looked up by pipeline class name.
FAMILIES: tuple[FamilySpec, ...] = (
    FLUX,
    WAN,
    HUNYUANDIT,
    COGVIEW4,
    COGVIEW3PLUS,
    HIDREAM,
    DIT,
    KANDINSKY5_IMAGE,
    OMNIGEN,
    OVIS_IMAGE,
    PRX,
    HUNYUANIMAGE,
    AMUSED,
    VISUALCLOZE,
)

__all__ = ["FAMILIES"]
