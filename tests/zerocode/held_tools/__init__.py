"""A tool library that keeps each tool's function in a field of the tool object (the shape of
langchain-core's ``StructuredTool.func``): plain, frozen and slotted dataclasses, a subclass that
reassigns the field after ``super().__init__``, and a property-managed attribute. Not a line of it
knows about agent-otel."""
