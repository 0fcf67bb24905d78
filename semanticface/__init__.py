"""semanticface: read a face image as ARKit blendshape coefficients with an interpretable description."""

from semanticface.coefficients import FaceCoefficients
from semanticface.errors import SemanticFaceError

__version__ = "0.1.0"
__all__ = ["FaceCoefficients", "SemanticFaceError", "__version__"]
