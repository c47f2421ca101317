"""Family entries, one module per family. Adding a family means adding a module here."""

from engine_service.models.families.allegro import ALLEGRO
from engine_service.models.families.amused import AMUSED, AMUSED_IMG2IMG, AMUSED_INPAINT
from engine_service.models.families.anyflow import ANYFLOW, ANYFLOW_FAR
from engine_service.models.families.auraflow import AURAFLOW
from engine_service.models.families.bria import BRIA
from engine_service.models.families.bria_fibo import BRIA_FIBO, BRIA_FIBO2, BRIA_FIBO_EDIT
from engine_service.models.families.chroma import CHROMA, CHROMA_IMG2IMG, CHROMA_INPAINT
from engine_service.models.families.chronoedit import CHRONOEDIT
from engine_service.models.families.cogvideox import COGVIDEOX, COGVIDEOX_FUN_CONTROL, COGVIDEOX_I2V, COGVIDEOX_V2V
from engine_service.models.families.cogview import COGVIEW3PLUS, COGVIEW4, COGVIEW4_CONTROL
from engine_service.models.families.consisid import CONSISID
from engine_service.models.families.cosmos import COSMOS
from engine_service.models.families.cosmos3 import COSMOS3_OMNI
from engine_service.models.families.dit import DIT
from engine_service.models.families.easyanimate import EASYANIMATE, EASYANIMATE_CONTROL, EASYANIMATE_I2V
from engine_service.models.families.ernie_image import ERNIE_IMAGE
from engine_service.models.families.flux import (
    FLUX,
    FLUX_CONTROL,
    FLUX_CONTROL_IMG2IMG,
    FLUX_CONTROL_INPAINT,
    FLUX_CONTROLNET,
    FLUX_CONTROLNET_IMG2IMG,
    FLUX_CONTROLNET_INPAINT,
    FLUX_FILL,
    FLUX_IMG2IMG,
    FLUX_INPAINT,
    FLUX_KONTEXT,
    FLUX_KONTEXT_INPAINT,
)
from engine_service.models.families.flux2 import FLUX2, FLUX2_KLEIN, FLUX2_KLEIN_INPAINT, FLUX2_KLEIN_KV
from engine_service.models.families.glm_image import GLM_IMAGE
from engine_service.models.families.helios import HELIOS, HELIOS_PYRAMID
from engine_service.models.families.hidream import HIDREAM
from engine_service.models.families.hunyuan_video import (
    HUNYUAN_SKYREELS_I2V,
    HUNYUAN_VIDEO,
    HUNYUAN_VIDEO_15,
    HUNYUAN_VIDEO_15_I2V,
    HUNYUAN_VIDEO_FRAMEPACK,
    HUNYUAN_VIDEO_I2V,
)
from engine_service.models.families.hunyuandit import HUNYUANDIT, HUNYUANDIT_CONTROLNET, HUNYUANDIT_PAG
from engine_service.models.families.hunyuanimage import HUNYUANIMAGE, HUNYUANIMAGE_REFINER
from engine_service.models.families.ideogram4 import IDEOGRAM4
from engine_service.models.families.joyimage import JOYIMAGE_EDIT, JOYIMAGE_EDIT_PLUS
from engine_service.models.families.kandinsky5 import KANDINSKY5_I2I, KANDINSKY5_IMAGE
from engine_service.models.families.kandinsky5_video import KANDINSKY5_I2V, KANDINSKY5_VIDEO
from engine_service.models.families.kandinsky6 import KANDINSKY6, KANDINSKY6_SR
from engine_service.models.families.krea2 import KREA2
from engine_service.models.families.latte import LATTE
from engine_service.models.families.longcat_image import LONGCAT_IMAGE, LONGCAT_IMAGE_EDIT
from engine_service.models.families.longcat_video import LONGCAT_VIDEO
from engine_service.models.families.ltx2 import (
    LTX2,
    LTX2_CONDITION,
    LTX2_DFR,
    LTX2_DFR_TEMPORAL_REFINE,
    LTX2_DIFFUSION_DECODE,
    LTX2_HDR,
    LTX2_I2V,
    LTX2_IN_CONTEXT,
    LTX2_LATENT_UPSAMPLE,
)
from engine_service.models.families.ltx_video import LTX_VIDEO, LTX_VIDEO_CONDITION, LTX_VIDEO_I2V, LTX_VIDEO_LONG
from engine_service.models.families.lumina import LUMINA, LUMINA2
from engine_service.models.families.mochi import MOCHI
from engine_service.models.families.motif_video import MOTIF_VIDEO, MOTIF_VIDEO_I2V
from engine_service.models.families.non_visual import (
    ACE_STEP,
    LONGCAT_AUDIO_DIT,
    RFD4_PROTEINA,
    STABLE_AUDIO,
    STABLE_AUDIO_3,
)
from engine_service.models.families.nucleusmoe_image import NUCLEUSMOE_IMAGE
from engine_service.models.families.omnigen import OMNIGEN
from engine_service.models.families.ovis_image import OVIS_IMAGE
from engine_service.models.families.pixart import PIXART, PIXART_SIGMA_PAG
from engine_service.models.families.prx import PRX, PRX_PIXEL
from engine_service.models.families.qwen_image import (
    QWEN_IMAGE,
    QWEN_IMAGE_CONTROLNET,
    QWEN_IMAGE_CONTROLNET_INPAINT,
    QWEN_IMAGE_EDIT,
    QWEN_IMAGE_EDIT_INPAINT,
    QWEN_IMAGE_EDIT_PLUS,
    QWEN_IMAGE_IMG2IMG,
    QWEN_IMAGE_INPAINT,
    QWEN_IMAGE_LAYERED,
)
from engine_service.models.families.qwen_image21 import QWEN_IMAGE_21
from engine_service.models.families.sana import SANA, SANA_CONTROLNET, SANA_PAG, SANA_SPRINT, SANA_SPRINT_IMG2IMG
from engine_service.models.families.sana_video import SANA_VIDEO, SANA_VIDEO_I2V, SANA_WM
from engine_service.models.families.sd3 import (
    SD3,
    SD3_CONTROLNET,
    SD3_CONTROLNET_INPAINT,
    SD3_IMG2IMG,
    SD3_INPAINT,
    SD3_PAG,
    SD3_PAG_IMG2IMG,
)
from engine_service.models.families.skyreels_v2 import (
    SKYREELS_V2,
    SKYREELS_V2_DF,
    SKYREELS_V2_DF_I2V,
    SKYREELS_V2_DF_V2V,
    SKYREELS_V2_I2V,
)
from engine_service.models.families.visualcloze import VISUALCLOZE, VISUALCLOZE_GENERATION
from engine_service.models.families.vq_diffusion import VQ_DIFFUSION
from engine_service.models.families.wan import LUCY_EDIT, WAN, WAN_ANIMATE, WAN_I2V, WAN_V2V, WAN_VACE
from engine_service.models.families.z_image import (
    Z_IMAGE,
    Z_IMAGE_CONTROLNET,
    Z_IMAGE_CONTROLNET_INPAINT,
    Z_IMAGE_IMG2IMG,
    Z_IMAGE_INPAINT,
    Z_IMAGE_OMNI,
)
from engine_service.models.spec import FamilySpec

#: Every supported family, looked up by pipeline class name.
FAMILIES: tuple[FamilySpec, ...] = (
    FLUX,
    FLUX_FILL,
    FLUX_KONTEXT,
    FLUX_IMG2IMG,
    FLUX_INPAINT,
    FLUX_CONTROLNET,
    FLUX_CONTROLNET_IMG2IMG,
    FLUX_CONTROLNET_INPAINT,
    FLUX_KONTEXT_INPAINT,
    FLUX_CONTROL,
    FLUX_CONTROL_IMG2IMG,
    FLUX_CONTROL_INPAINT,
    WAN,
    QWEN_IMAGE,
    QWEN_IMAGE_EDIT,
    QWEN_IMAGE_EDIT_PLUS,
    QWEN_IMAGE_IMG2IMG,
    QWEN_IMAGE_INPAINT,
    QWEN_IMAGE_CONTROLNET,
    QWEN_IMAGE_CONTROLNET_INPAINT,
    QWEN_IMAGE_EDIT_INPAINT,
    QWEN_IMAGE_LAYERED,
    QWEN_IMAGE_21,
    SD3,
    SD3_IMG2IMG,
    SD3_INPAINT,
    SD3_CONTROLNET,
    SD3_CONTROLNET_INPAINT,
    SD3_PAG,
    SD3_PAG_IMG2IMG,
    PIXART,
    PIXART_SIGMA_PAG,
    AURAFLOW,
    CHROMA,
    CHROMA_IMG2IMG,
    CHROMA_INPAINT,
    BRIA,
    SANA,
    SANA_PAG,
    SANA_SPRINT,
    SANA_SPRINT_IMG2IMG,
    SANA_CONTROLNET,
    LUMINA,
    LUMINA2,
    Z_IMAGE,
    Z_IMAGE_IMG2IMG,
    Z_IMAGE_INPAINT,
    Z_IMAGE_OMNI,
    Z_IMAGE_CONTROLNET,
    Z_IMAGE_CONTROLNET_INPAINT,
    FLUX2,
    FLUX2_KLEIN,
    FLUX2_KLEIN_INPAINT,
    FLUX2_KLEIN_KV,
    WAN_I2V,
    WAN_VACE,
    WAN_V2V,
    LUCY_EDIT,
    COGVIDEOX,
    COGVIDEOX_I2V,
    COGVIDEOX_V2V,
    COGVIDEOX_FUN_CONTROL,
    HUNYUAN_VIDEO,
    HUNYUAN_SKYREELS_I2V,
    HUNYUAN_VIDEO_I2V,
    HUNYUAN_VIDEO_15,
    HUNYUAN_VIDEO_15_I2V,
    HUNYUAN_VIDEO_FRAMEPACK,
    LTX_VIDEO,
    LTX_VIDEO_I2V,
    LTX_VIDEO_CONDITION,
    LTX_VIDEO_LONG,
    LTX2,
    LTX2_I2V,
    LTX2_CONDITION,
    LTX2_IN_CONTEXT,
    LTX2_HDR,
    LTX2_DFR,
    LTX2_DFR_TEMPORAL_REFINE,
    LTX2_LATENT_UPSAMPLE,
    LTX2_DIFFUSION_DECODE,
    SANA_VIDEO,
    SANA_VIDEO_I2V,
    SANA_WM,
    SKYREELS_V2,
    SKYREELS_V2_I2V,
    SKYREELS_V2_DF,
    SKYREELS_V2_DF_I2V,
    SKYREELS_V2_DF_V2V,
    MOCHI,
    ALLEGRO,
    CHRONOEDIT,
    COSMOS,
    COSMOS3_OMNI,
    CONSISID,
    KANDINSKY5_VIDEO,
    KANDINSKY5_I2V,
    KANDINSKY6,
    KANDINSKY6_SR,
    LONGCAT_VIDEO,
    ANYFLOW,
    ANYFLOW_FAR,
    EASYANIMATE,
    EASYANIMATE_I2V,
    EASYANIMATE_CONTROL,
    WAN_ANIMATE,
    HELIOS,
    HELIOS_PYRAMID,
    HUNYUANDIT,
    HUNYUANDIT_PAG,
    HUNYUANDIT_CONTROLNET,
    COGVIEW4,
    COGVIEW4_CONTROL,
    COGVIEW3PLUS,
    HIDREAM,
    DIT,
    KANDINSKY5_IMAGE,
    KANDINSKY5_I2I,
    OMNIGEN,
    OVIS_IMAGE,
    LONGCAT_IMAGE,
    LONGCAT_IMAGE_EDIT,
    KREA2,
    GLM_IMAGE,
    BRIA_FIBO,
    BRIA_FIBO_EDIT,
    BRIA_FIBO2,
    PRX,
    PRX_PIXEL,
    HUNYUANIMAGE,
    HUNYUANIMAGE_REFINER,
    AMUSED,
    AMUSED_IMG2IMG,
    AMUSED_INPAINT,
    VQ_DIFFUSION,
    JOYIMAGE_EDIT,
    JOYIMAGE_EDIT_PLUS,
    VISUALCLOZE_GENERATION,
    VISUALCLOZE,
    NUCLEUSMOE_IMAGE,
    ERNIE_IMAGE,
    IDEOGRAM4,
    LATTE,
    MOTIF_VIDEO,
    MOTIF_VIDEO_I2V,
    ACE_STEP,
    STABLE_AUDIO,
    STABLE_AUDIO_3,
    LONGCAT_AUDIO_DIT,
    RFD4_PROTEINA,
)

__all__ = ["FAMILIES"]
