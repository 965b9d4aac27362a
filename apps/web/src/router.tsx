// Routes: sign-in and the password reset pages outside the shell; inside it the object pages and the administration pages
// from the registry. Every page but sign-in is loaded lazily.
import { createBrowserRouter } from "react-router";
import { Shell } from "./components/Shell";
import { SignIn } from "./pages/SignIn";
import { accountPages, adminPages } from "./pages/registry";

export function makeRouter() {
  return createBrowserRouter(
    [
      { path: "/sign-in", element: <SignIn /> },
      { path: "/forgot-password", lazy: async () => ({ Component: (await import("./pages/PasswordReset")).ForgotPassword }) },
      { path: "/reset-password", lazy: async () => ({ Component: (await import("./pages/PasswordReset")).ResetPassword }) },
      {
        path: "/",
        element: <Shell />,
        children: [
          { index: true, lazy: async () => ({ Component: (await import("./pages/Home")).default }) },
          { path: "o/:object", lazy: async () => ({ Component: (await import("./pages/ObjectList")).default }) },
          { path: "o/:object/new", lazy: async () => ({ Component: (await import("./pages/RecordEdit")).default }) },
          { path: "o/:object/:id", lazy: async () => ({ Component: (await import("./pages/RecordPage")).default }) },
          { path: "o/:object/:id/edit", lazy: async () => ({ Component: (await import("./pages/RecordEdit")).default }) },
          ...accountPages.map((p) => ({
            path: `account/${p.path}`,
            lazy: async () => ({ Component: (await p.load()).default }),
          })),
          ...adminPages.map((p) => ({
            path: `admin/${p.path}`,
            lazy: async () => ({ Component: (await p.load()).default }),
          })),
          { path: "*", lazy: async () => ({ Component: (await import("./pages/Home")).default }) },
        ],
      },
    ],
    { basename: "/console" },
  );
}
