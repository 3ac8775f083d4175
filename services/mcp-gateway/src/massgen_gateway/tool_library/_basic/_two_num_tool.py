"""The project's version of the sample tool in MassGen's library
(``massgen/tool/_basic/_two_num_tool.py``): configs that name it without a path, or by
MassGen's path, get this one. Run by the gateway's custom tool host, which provides
``massgen.tool._result`` when MassGen is not installed."""

from massgen.tool._result import ExecutionResult, TextContent


async def two_num_tool(x: int, y: int) -> ExecutionResult:
    """Return the sum x + y.

    Args:
        x: the left operand
        y: the right operand
    """
    return ExecutionResult(output_blocks=[TextContent(data=f"{x} + {y} = {x + y}")])
