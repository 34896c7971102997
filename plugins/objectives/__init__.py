"""Built-in objectives; their recipes are the YAML files in ``recipes/`` (core/kernel/recipes.py)."""
from pathlib import Path

__all__ = ["RECIPES"]

RECIPES = Path(__file__).parent / "recipes"
