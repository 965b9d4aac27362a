// Class names: conditional parts joined, later Tailwind utilities overriding earlier ones.
import { clsx, type ClassValue } from "clsx";
import { twMerge } from "tailwind-merge";

export const cn = (...parts: ClassValue[]) => twMerge(clsx(parts));
