"""The add-on's class and category menus match the shipped models (the add-on cannot load them:
it has no model code, so the names are written into it)."""

from __future__ import annotations

import ast

from _addon_modules import ADDON

from shapegen.commands.methods import load_system


def _tuple(name: str) -> tuple:
    tree = ast.parse((ADDON / "operators.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = node.value
            if isinstance(value, ast.Name):  # an alias of another constant
                return _tuple(value.id)
            return ast.literal_eval(value)
    raise AssertionError(f"{name} not found in blender/operators.py")


def test_class_menu_is_the_shipped_msdf_models_classes():
    assert list(_tuple("MSDF_CLASSES")) == list(load_system("msdf").config.classes)


def test_category_menu_is_the_shipped_las_models_categories():
    assert list(_tuple("LAS_CATEGORIES")) == list(load_system("las").config.categories)
