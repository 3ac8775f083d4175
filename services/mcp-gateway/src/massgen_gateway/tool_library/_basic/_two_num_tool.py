"""MassGen's sample custom tool (``massgen/tool/_basic/_two_num_tool.py``), served to
configs that name it without a path or by MassGen's path. Run by the gateway's custom
tool host, which provides ``massgen.tool._result`` when MassGen is not installed."""

from massgen.tool._result import ExecutionResult, TextContent


async def two_num_tool(x: int, y: int) -> ExecutionResult:
    """Add two numbers together.

    Args:
        x: First number
        y: Second number

    Returns:
        Sum of the two numbers
    """
    result = x + y
    return ExecutionResult(
        output_blocks=[
            TextContent(data=f"The sum of {x} and {y} is {result}"),
        ],
    )
