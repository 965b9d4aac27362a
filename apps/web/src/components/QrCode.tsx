// A QR code as inline SVG (uqr encodes; the modules are drawn here as one path). Always dark on a
// white square, also in the dark theme: phone cameras read that contrast best.
import { useMemo } from "react";
import { encode } from "uqr";

/** The SVG path of the dark modules, one 1×1 square each, in module units. */
export function qrPath(text: string): { size: number; d: string } {
  // Medium error correction and the four-module quiet zone the standard asks for.
  const { size, data } = encode(text, { ecc: "M", border: 4 });
  const parts: string[] = [];
  data.forEach((row, y) =>
    row.forEach((dark, x) => {
      if (dark) parts.push(`M${x} ${y}h1v1h-1z`);
    }),
  );
  return { size, d: parts.join("") };
}

export function QrCode({ text, label, pixels = 200 }: { text: string; label: string; pixels?: number }) {
  const { size, d } = useMemo(() => qrPath(text), [text]);
  return (
    <svg
      role="img"
      aria-label={label}
      width={pixels}
      height={pixels}
      viewBox={`0 0 ${size} ${size}`}
      shapeRendering="crispEdges"
      className="rounded-md"
    >
      <rect width={size} height={size} fill="#ffffff" />
      <path d={d} fill="#000000" />
    </svg>
  );
}
